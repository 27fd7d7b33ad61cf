//! The one wrapper every primitive call goes through: decode and check args, then either plan
//! (dry-run) or journal write-ahead, call, journal the outcome; errors become catchable maps.

use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, EvalAltResult, Map, Position};

use super::session::{Session, journal_failure};
use crate::model::{Access, ErrorKind, PrimitiveError};
use crate::providers::DynPrimitive;
use crate::run::{Event, PlanEntry, journal::redact};

/// Turns a primitive error into the map a script's `catch (e)` sees.
pub(crate) fn throw(err: &PrimitiveError, pos: Position) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), err.kind.as_str().into());
    map.insert("message".into(), err.message.clone().into());
    map.insert("target".into(), err.target.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    if let Some(id) = &err.request_id {
        map.insert("request_id".into(), id.clone().into());
    }
    EvalAltResult::ErrorRuntime(map.into(), pos).into()
}

/// How deeply nested a value may be to cross into the journal or a primitive's args.
const MAX_VALUE_DEPTH: usize = 64;

/// A script value as JSON (for the journal and primitive args); a value nested deeper than
/// [`MAX_VALUE_DEPTH`] (a closure that holds itself, say) becomes a string saying so.
pub(crate) fn to_json(value: &Dynamic) -> serde_json::Value {
    try_to_json(value).unwrap_or_else(serde_json::Value::String)
}

/// A script value as JSON, or why it cannot be one. Never recurses without bound: a value that
/// contains itself through a closure's captured variables is an error, not a stack overflow.
pub(crate) fn try_to_json(value: &Dynamic) -> Result<serde_json::Value, String> {
    serde_json::to_value(AsJson(value, 0)).map_err(|e| e.to_string())
}

/// The same JSON as [`try_to_json`], written straight to text: a large value (a fleet stage's
/// 10,000 results) is journaled without first being built again as a tree of JSON values.
pub(crate) fn try_to_json_text(value: &Dynamic) -> Result<Box<serde_json::value::RawValue>, String> {
    let text = serde_json::to_string(&AsJson(value, 0)).map_err(|e| e.to_string())?;
    serde_json::value::RawValue::from_string(text).map_err(|e| e.to_string())
}

/// A script value seen as JSON, `usize` levels deep: the one mapping both forms above use.
struct AsJson<'a>(&'a Dynamic, usize);

impl serde::Serialize for AsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap, SerializeSeq};
        let AsJson(value, depth) = *self;
        if depth > MAX_VALUE_DEPTH {
            return Err(S::Error::custom(format!(
                "a value is nested deeper than {MAX_VALUE_DEPTH} levels (does it contain itself through a closure?)"
            )));
        }
        if value.is_shared() {
            return AsJson(&value.flatten_clone(), depth + 1).serialize(ser);
        }
        if value.is_unit() {
            return ser.serialize_unit();
        }
        if let Ok(b) = value.as_bool() {
            return ser.serialize_bool(b);
        }
        if let Ok(i) = value.as_int() {
            return ser.serialize_i64(i);
        }
        if let Ok(f) = value.as_float() {
            // Not a number and the infinities have no JSON form: null, as before.
            return if f.is_finite() { ser.serialize_f64(f) } else { ser.serialize_unit() };
        }
        if let Ok(c) = value.as_char() {
            return ser.serialize_char(c);
        }
        if let Ok(s) = value.as_immutable_string_ref() {
            return ser.serialize_str(s.as_str());
        }
        if let Some(items) = value.read_lock::<rhai::Array>() {
            let mut seq = ser.serialize_seq(Some(items.len()))?;
            for v in items.iter() {
                seq.serialize_element(&AsJson(v, depth + 1))?;
            }
            return seq.end();
        }
        if let Some(map) = value.read_lock::<Map>() {
            let mut out = ser.serialize_map(Some(map.len()))?;
            for (k, v) in map.iter() {
                out.serialize_entry(k.as_str(), &AsJson(v, depth + 1))?;
            }
            return out.end();
        }
        if let Some(blob) = value.read_lock::<rhai::Blob>() {
            return ser.collect_seq(blob.iter());
        }
        if let Some(f) = value.read_lock::<rhai::FnPtr>() {
            return ser.serialize_str(&format!("Fn({})", f.fn_name()));
        }
        ser.serialize_str(value.type_name())
    }
}

/// A JSON value as a script value: what `rhai::serde::to_dynamic` makes of it, built directly
/// (every call's output passes here, and serde's round trip was a percent of a fleet run's CPU).
pub(crate) fn from_json(value: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Dynamic::from_int(i),
            (None, Some(f)) => Dynamic::from_float(f),
            (None, None) => Dynamic::UNIT,
        },
        Value::String(s) => Dynamic::from(rhai::ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(from_json).collect()),
        Value::Object(map) => {
            // Inserted one by one: `collect` into a B-tree sorts a copy first, and these keys
            // come sorted and few.
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.as_str().into(), from_json(v));
            }
            Dynamic::from_map(out)
        }
    }
}

/// Performs one primitive call for a script.
pub(crate) fn invoke(
    session: &Session,
    primitive: &Arc<dyn DynPrimitive>,
    options: Map,
    pos: Position,
) -> Result<Dynamic, Box<EvalAltResult>> {
    if session.stop_state() != super::session::Stop::Running {
        return Err(session.terminated(pos));
    }
    let meta = primitive.meta();
    let name = meta.full_name();
    let args = try_to_json(&Dynamic::from_map(options))
        .map_err(|why| throw(&PrimitiveError::invalid(format!("{name}: {why}")), pos))?;
    super::names::check_names(&name, &args).map_err(|why| throw(&PrimitiveError::invalid(why), pos))?;
    let cx = session.cx();
    // Under dry-run, a health probe after a planned change would be checked once the change
    // is made; it is sent once, for real, and does not wait through its attempts.
    let probe_after_plan = session.dry_run
        && meta.namespace == "health"
        && session.plan.lock().map(|p| p.iter().any(|e| e.call != "approve")).unwrap_or(false);
    let mut journal_args = args.clone();
    redact(&mut journal_args);
    // The call takes the args themselves; a copy is kept only for a dry-run's overlay of a read.
    let overlay_args = (session.dry_run && meta.access != Access::Mutate).then(|| args.clone());
    let mut call_args = args;
    if probe_after_plan && let serde_json::Value::Object(map) = &mut call_args {
        map.insert("attempts".into(), 1.into());
        map.insert("consecutive".into(), 1.into());
    }
    let decoded = primitive.decode(call_args, &cx.shared).map_err(|e| throw(&e, pos))?;
    let target = decoded.target.clone();
    let call = session.next_call();
    let stage = session.current_stage();

    if meta.access == Access::Mutate {
        // Scope first: a call outside it is refused before any request (and before any plan).
        if let Err(why) = session.scope.check(target.as_deref(), &name) {
            session
                .record(Event::Refused {
                    primitive: name.clone(),
                    target: target.clone(),
                    by: "scope".into(),
                    reason: why.clone(),
                })
                .map_err(|lost| journal_failure(lost, pos))?;
            return Err(throw(
                &PrimitiveError::new(ErrorKind::Denied, why).with_target(target.clone().unwrap_or_default()),
                pos,
            ));
        }
        // A lock this run held was lost to another runner: nothing more may change.
        if let Some(why) = session.locks.as_ref().and_then(|l| l.lost()) {
            session
                .record(Event::Refused {
                    primitive: name.clone(),
                    target: target.clone(),
                    by: "lock".into(),
                    reason: why.clone(),
                })
                .map_err(|lost| journal_failure(lost, pos))?;
            return Err(throw(
                &PrimitiveError::new(ErrorKind::Locked, why).with_target(target.clone().unwrap_or_default()),
                pos,
            ));
        }
        if let (Some(locks), Some(key)) = (&session.locks, target.as_deref()) {
            match locks.acquire(key) {
                Ok(None) => {}
                Ok(Some(taken)) => {
                    let p = taken.previous;
                    session
                        .record(Event::Log {
                            level: "warn".into(),
                            message: format!(
                                "took over the lock on `{key}` left by run {} (pid {} on {}, since {}), whose process is gone",
                                p.run_id, p.pid, p.host, p.since.format("%Y-%m-%d %H:%M:%S UTC")
                            ),
                        })
                        .map_err(|lost| journal_failure(lost, pos))?;
                }
                Err(
                    e @ (crate::run::locks::LockError::Held { .. }
                    | crate::run::locks::LockError::Stranded { .. }),
                ) => {
                    session
                        .record(Event::Refused {
                            primitive: name.clone(),
                            target: target.clone(),
                            by: "lock".into(),
                            reason: e.to_string(),
                        })
                        .map_err(|lost| journal_failure(lost, pos))?;
                    return Err(throw(
                        &PrimitiveError::new(ErrorKind::Locked, e.to_string()).with_target(key),
                        pos,
                    ));
                }
                Err(e) => {
                    return Err(throw(
                        &PrimitiveError::new(ErrorKind::Server, e.to_string()).with_target(key),
                        pos,
                    ));
                }
            }
        }
    }

    if meta.access == Access::Mutate
        && let Some(done) = session.replay.as_ref().and_then(|r| r.lock().ok()?.call(&name, &journal_args))
    {
        match done {
            Ok(output) => {
                // It finished before the interruption: take its journaled output, send nothing.
                session
                    .record(Event::Replayed {
                        what: format!(
                            "call {name}{}",
                            target.as_deref().map(|t| format!(" on `{t}`")).unwrap_or_default()
                        ),
                    })
                    .map_err(|why| journal_failure(why, pos))?;
                return Ok(from_json(&output));
            }
            Err(in_doubt) => {
                if let Some(output) =
                    settle_in_doubt(session, &decoded, &name, target.as_deref(), &in_doubt, pos)?
                {
                    return Ok(from_json(&output));
                }
                // Checked: it did not take effect, so it is sent now.
            }
        }
    }

    if meta.access == Access::Mutate
        && let Some(stop) = session.undo_stop(&format!("`{name}`"), pos)
    {
        return Err(stop);
    }
    if let Some(stop) = session.undo_stop_past_replay(&format!("`{name}`"), pos) {
        return Err(stop);
    }

    if meta.access == Access::Mutate && session.dry_run {
        let mut planned = session
            .block_on(on_runtime(&session.rt, decoded.plan(cx)))
            .map_err(|e| fail(session, &e, pos))?;
        // Every planned output says so, whatever the primitive returned.
        if let serde_json::Value::Object(map) = &mut planned.output {
            map.insert("planned".into(), serde_json::Value::Bool(true));
        }
        if let Some(t) = target.as_deref() {
            super::planned::remember(&session.cx().shared, t, &name, &journal_args, &planned.output);
        }
        if let Ok(mut plan) = session.plan.lock() {
            plan.push(PlanEntry {
                call: name.clone(),
                target: target.clone(),
                effect: planned.effect.clone(),
                args: journal_args.clone(),
                stage: stage.clone(),
            });
        }
        session
            .record(Event::CallPlanned {
                call,
                primitive: name,
                target,
                args: journal_args,
                effect: planned.effect,
                stage,
            })
            .map_err(|why| journal_failure(why, pos))?;
        return Ok(from_json(&planned.output));
    }

    let started_event = Event::CallStarted {
        call,
        primitive: name.clone(),
        access: meta.access,
        target: target.clone(),
        args: journal_args,
        stage,
    };
    // A call whose every change goes through one guarded place waits for its write-ahead fsync
    // only there, just before the change (`providers::write_ahead`); any other call has its
    // event fsynced before it starts.
    let defer = meta.access == Access::Mutate
        && crate::providers::k8s::CHANGES_ONLY_BY_PATCH.contains(&name.as_str());
    let write_ahead = if defer {
        session.record_deferred(started_event)
    } else {
        session.record(started_event).map(|()| None)
    }
    .map_err(|why| journal_failure(why, pos))?;
    let started = Instant::now();
    let call_fut = match write_ahead {
        Some(barrier) => Box::pin(barrier.scope(decoded.call(cx))),
        None => decoded.call(cx),
    };
    // A mutating call in flight is the one thing an interrupt waits for: its outcome is then
    // journaled, so a resume knows whether it happened instead of finding it in doubt.
    let mut result = if meta.access == Access::Mutate {
        session.block_on_mutation(on_runtime(&session.rt, call_fut))
    } else {
        session.block_on(on_runtime(&session.rt, call_fut))
    };
    if probe_after_plan && let Ok(value) = &mut result {
        assume_planned_health(session, value);
    }
    if let Some(args) = &overlay_args
        && let Ok(value) = &mut result
    {
        super::planned::overlay(&session.cx().shared, &name, args, target.as_deref(), value);
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    // The script's value is made first, so the output itself (not a copy) goes to the journal.
    let (ok, output, error, outcome) = match result {
        Ok(v) => {
            let value = from_json(&v);
            (true, Some(v), None, Ok(value))
        }
        Err(e) => (false, None, Some(e.clone()), Err(e)),
    };
    // The outcome is journaled even if the run was stopped meanwhile: nothing is lost.
    let journaled =
        session.record(Event::CallFinished { call, primitive: name, ok, output, error, duration_ms });
    // A deferred write-ahead fsync that failed refused the change; the run ends as when any
    // journal write fails.
    if defer && let Some(why) = session.journal_lost() {
        return Err(journal_failure(why, pos));
    }
    journaled.map_err(|why| journal_failure(why, pos))?;
    outcome.map_err(|e| fail(session, &e, pos))
}

/// Runs a call (or its plan, or its check after an interruption) as a task of the run's
/// runtime and waits for its outcome. Its requests, and every hop inside the clients (kube's
/// request buffer where one is used, hyper's connection tasks), then stay on the runtime's
/// threads: the script thread that waits is woken once per call, not several times per request,
/// and its stack does not keep the deep frames of a request resident. Dropped (an interrupt, a
/// timeout, a stop), the wait aborts the task, as dropping the call did.
async fn on_runtime<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    call: futures::future::BoxFuture<'static, Result<T, PrimitiveError>>,
) -> Result<T, PrimitiveError> {
    /// Aborts the task when the wait is dropped before the task ended.
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = rt.spawn(call);
    let _abort = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => Err(PrimitiveError::new(
            ErrorKind::Server,
            "the call stopped unexpectedly inside rollbook (a bug to report); the journal shows what was sent",
        )),
        Err(_) => Err(PrimitiveError::new(ErrorKind::Cancelled, "the call was cancelled")),
    }
}

/// Under dry-run, a probe that fails after a planned change reports what it would be checked
/// for, not the world before the change: `ok: true`, `planned: true`, and the real answer in
/// `observed`, so the plan goes on to the steps after the check.
fn assume_planned_health(session: &Session, value: &mut serde_json::Value) {
    let serde_json::Value::Object(map) = value else { return };
    if map.get("ok") != Some(&serde_json::Value::Bool(false)) {
        return;
    }
    let observed = serde_json::Value::Object(map.clone());
    let why = map.get("error").and_then(|e| e.as_str()).unwrap_or("failing").to_string();
    map.insert("ok".into(), true.into());
    map.insert("error".into(), serde_json::Value::Null);
    if map.contains_key("verdict") {
        map.insert("verdict".into(), "pass".into());
        map.insert("reason".into(), "planned: would be checked after the planned changes".into());
    }
    map.insert("planned".into(), true.into());
    map.insert("observed".into(), observed);
    let _ = session.record(Event::Log {
        level: "info".into(),
        message: format!(
            "dry-run: the probe answers `{why}` now, before the planned changes; it would be checked after them, so the plan goes on"
        ),
    });
}

/// Decides a call left in doubt by the interrupted run: the primitive checks whether it took
/// effect (its output if so, `None` if not); when no check can tell, an operator on a terminal
/// is asked, and otherwise the run stops for a person (exit 3) naming what to look at.
fn settle_in_doubt(
    session: &Session,
    decoded: &crate::providers::Decoded,
    name: &str,
    target: Option<&str>,
    in_doubt: &crate::run::replay::InDoubt,
    pos: Position,
) -> Result<Option<serde_json::Value>, Box<EvalAltResult>> {
    use crate::providers::Verified;
    let on_target = target.map(|t| format!(" on `{t}`")).unwrap_or_default();
    session
        .record(Event::Log {
            level: "info".into(),
            message: format!(
                "checking whether `{name}`{on_target}, sent at {} before the interruption, took effect",
                in_doubt.started.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        })
        .map_err(|why| journal_failure(why, pos))?;
    let verdict = session.block_on(on_runtime(&session.rt, decoded.verify(session.cx(), in_doubt.started)));
    let (applied, output, detail) = match verdict {
        Ok(Verified::Applied(output)) => (Some(true), Some(output), "its effect is there".to_string()),
        Ok(Verified::NotApplied) => (Some(false), None, "its effect is not there".to_string()),
        Ok(Verified::Unknown(why)) => (None, None, why),
        Err(e) => (None, None, format!("the check failed: {e}")),
    };
    let on = target.map(|t| format!(" on `{t}`")).unwrap_or_default();
    let sent = in_doubt.started.format("%Y-%m-%d %H:%M:%S UTC");
    let (applied, output) = match applied {
        Some(known) => (known, output),
        None => {
            let question = format!(
                "`{name}`{on} was sent at {sent} before the interruption and {detail}; did it take effect?"
            );
            match session.reporter.ask(&question) {
                Some(answer) => (answer, answer.then_some(serde_json::Value::Null)),
                None => {
                    session
                        .record(Event::CallVerified {
                            call: in_doubt.call,
                            primitive: name.into(),
                            applied: None,
                            output: None,
                            detail: detail.clone(),
                        })
                        .map_err(|why| journal_failure(why, pos))?;
                    let look = format!(
                        "`{name}`{on} was sent at {sent} and its outcome is unknown ({detail}); check whether it took effect, then resume on a terminal to answer"
                    );
                    if let Ok(mut needs) = session.needs_person.lock() {
                        *needs = Some(look.clone());
                    }
                    return Err(EvalAltResult::ErrorTerminated(Dynamic::from(look), pos).into());
                }
            }
        }
    };
    session
        .record(Event::CallVerified {
            call: in_doubt.call,
            primitive: name.into(),
            applied: Some(applied),
            output: output.clone(),
            detail,
        })
        .map_err(|why| journal_failure(why, pos))?;
    Ok(if applied { Some(output.unwrap_or(serde_json::Value::Null)) } else { None })
}

fn fail(session: &Session, e: &PrimitiveError, pos: Position) -> Box<EvalAltResult> {
    if e.kind == ErrorKind::Cancelled && session.stop_state() != super::session::Stop::Running {
        session.terminated(pos)
    } else {
        throw(e, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_journaled_as_text_is_the_same_json_as_the_value() {
        let mut item = Map::new();
        item.insert("context".into(), "aks-fleet-00".into());
        item.insert("n".into(), Dynamic::from_int(-3));
        item.insert("ratio".into(), Dynamic::from_float(0.5));
        item.insert("nan".into(), Dynamic::from_float(f64::NAN));
        item.insert("c".into(), Dynamic::from_char('"'));
        item.insert("none".into(), Dynamic::UNIT);
        item.insert("blob".into(), Dynamic::from_blob(vec![1, 255]));
        item.insert("quote \" key".into(), "line\nbreak".into());
        let shared = Dynamic::from_array(vec![true.into(), Dynamic::from_map(item.clone())]).into_shared();
        let value = Dynamic::from_array(vec![Dynamic::from_map(item), shared]);
        let tree = try_to_json(&value).unwrap();
        let text = try_to_json_text(&value).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(text.get()).unwrap(), tree);
        assert_eq!(tree[0]["nan"], serde_json::Value::Null);
        assert_eq!(tree[1][1]["c"], "\"");
        assert_eq!(tree[0]["blob"], serde_json::json!([1, 255]));
    }

    #[test]
    fn a_json_value_becomes_the_script_value_rhai_serde_makes_of_it() {
        let value = serde_json::json!({
            "changed": true,
            "from_revision": 4,
            "negative": -7,
            "big": u64::MAX,
            "ratio": 0.25,
            "none": null,
            "images": {"web": "fleet/web:1.0.0", "sidecar": ""},
            "list": [1, "two", [3.5, false], {"k": null}],
            "unicode key é": "vålue",
        });
        let direct = from_json(&value);
        let through_serde = rhai::serde::to_dynamic(&value).unwrap();
        assert_eq!(format!("{direct:?}"), format!("{through_serde:?}"));
        assert_eq!(to_json(&direct), to_json(&through_serde));
        assert!(direct.read_lock::<Map>().unwrap()["big"].is_float());
        assert!(from_json(&serde_json::json!(null)).is_unit());
    }

    #[test]
    fn a_value_nested_too_deep_is_an_error_either_way() {
        let mut value = Dynamic::from_int(1);
        for _ in 0..=MAX_VALUE_DEPTH + 1 {
            value = Dynamic::from_array(vec![value]);
        }
        let tree = try_to_json(&value).unwrap_err();
        let text = try_to_json_text(&value).unwrap_err();
        assert!(tree.contains("nested deeper than 64 levels"), "{tree}");
        assert_eq!(tree, text);
    }
}
