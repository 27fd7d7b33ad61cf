//! Signing libraries with ed25519 (`rollbook keygen`, `sign`, `verify`) and checking git
//! dependencies against the `[trust] keys` of the manifest.
//!
//! - **Key file**: a text file holding the 32-byte ed25519 secret seed as 64 hex digits
//!   (surrounding whitespace ignored). `rollbook keygen FILE` creates one (a new file, mode
//!   0600 from its creation on Unix; an existing file or link is refused) and `FILE.pub` with
//!   the public key: 64 hex digits, the form `[trust] keys` takes.
//! - **Signature**: `rollbook.sig` at the library's root (left out of the content hash), TOML
//!   with `library`, `version`, `hash` (the content hash), `key` (public key, hex) and
//!   `signature` (hex), the ed25519 signature of the text
//!   `rollbook-library-signature-v1\n<library>\n<version>\n<hash>\n`.
//! - **Trust policy**: the operator's, never a library's or a bundle's: the `[trust] keys` of
//!   the nearest `rollbook.toml` at or above the working folder, plus `ROLLBOOK_TRUST_KEYS`
//!   (comma-separated public keys). See [`operator_keys`].

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{LibraryError, Manifest, content_hash};

/// The signature's file name, at the library's root.
pub const SIGFILE: &str = "rollbook.sig";

/// `rollbook.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigFile {
    /// `[library] name`.
    pub library: String,
    /// `[library] version`.
    pub version: String,
    /// The content hash signed.
    pub hash: String,
    /// The signer's public key, hex.
    pub key: String,
    /// The signature, hex.
    pub signature: String,
}

fn message(library: &str, version: &str, hash: &str) -> String {
    format!("rollbook-library-signature-v1\n{library}\n{version}\n{hash}\n")
}

/// A new secret key file at `file` (and `file.pub`); returns the public key, hex.
pub fn keygen(file: &Path) -> Result<String, String> {
    if file.symlink_metadata().is_ok() {
        return Err(format!("`{}` exists already; choose another file", file.display()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let public = hex::encode(key.verifying_key().to_bytes());
    // Created new (never through an existing file or link) and 0600 from the first byte.
    let mut out = crate::model::file::create_private_file(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("`{}` exists already (or is a link); choose another file", file.display())
        }
        _ => format!("cannot create `{}`: {e}", file.display()),
    })?;
    out.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .and_then(|_| out.sync_all())
        .map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
    let pub_file = format!("{}.pub", file.display());
    std::fs::write(&pub_file, format!("{public}\n"))
        .map_err(|e| format!("cannot write `{pub_file}`: {e}"))?;
    Ok(public)
}

fn read_key(file: &Path) -> Result<SigningKey, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("cannot read key `{}`: {e}", file.display()))?;
    let bytes =
        hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
            format!(
                "key `{}` is not an ed25519 secret key (64 hex digits, see `rollbook keygen`)",
                file.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Signs the library of `manifest` with the key in `key_file`: writes `rollbook.sig`.
pub fn sign(manifest: &Manifest, key_file: &Path) -> Result<SigFile, String> {
    let key = read_key(key_file)?;
    let root = manifest.root();
    let hash = content_hash(&root).map_err(|e| e.to_string())?;
    let version = manifest.version.to_string();
    let signature = key.sign(message(&manifest.name, &version, &hash).as_bytes());
    let sig = SigFile {
        library: manifest.name.clone(),
        version,
        hash,
        key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(signature.to_bytes()),
    };
    let text = toml::to_string_pretty(&sig).map_err(|e| format!("cannot encode the signature: {e}"))?;
    let file = root.join(SIGFILE);
    std::fs::write(&file, text).map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
    Ok(sig)
}

/// Checks the signature of the library in `dir`: present, made over its current content by
/// the key it names, and (when `trusted` is not empty) that key is one of `trusted`.
pub fn verify(dir: &Path, trusted: &[String]) -> Result<SigFile, String> {
    let file = dir.join(SIGFILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("it is not signed (no `{SIGFILE}`)"));
        }
        Err(e) => return Err(format!("cannot read `{}`: {e}", file.display())),
    };
    let manifest = Manifest::load(&dir.join(super::manifest::MANIFEST)).map_err(|e| e.to_string())?;
    let hash = content_hash(dir).map_err(|e: LibraryError| e.to_string())?;
    verify_parts(&manifest, &text, &hash, trusted)
}

/// As [`verify`], from the parts already read: the library's manifest, the text of its
/// `rollbook.sig` and its content hash.
pub fn verify_parts(
    manifest: &Manifest,
    sig_text: &str,
    hash: &str,
    trusted: &[String],
) -> Result<SigFile, String> {
    let sig: SigFile =
        toml::from_str(sig_text).map_err(|e| format!("`{SIGFILE}` is not a signature: {e}"))?;
    if sig.library != manifest.name || sig.version != manifest.version.to_string() {
        return Err(format!(
            "`{SIGFILE}` signs {} {}, but the library is {} {}",
            sig.library, sig.version, manifest.name, manifest.version
        ));
    }
    if sig.hash != hash {
        return Err(format!(
            "its content ({hash}) is not what was signed ({}): it changed after signing",
            sig.hash
        ));
    }
    check_signature(&sig.key, &sig.signature, message(&sig.library, &sig.version, &sig.hash).as_bytes())
        .map_err(|why| format!("`{SIGFILE}`: {why}"))?;
    if !trusted.is_empty() && !is_trusted(&sig.key, trusted) {
        return Err(format!("it is signed by key {}, which is not among the trusted keys", sig.key));
    }
    Ok(sig)
}

/// Whether public key `key` (hex) is one of `trusted`.
pub fn is_trusted(key: &str, trusted: &[String]) -> bool {
    trusted.iter().any(|t| t.trim().eq_ignore_ascii_case(key.trim()))
}

/// Checks an ed25519 `signature` (hex) by public `key` (hex) over `message`.
pub fn check_signature(key: &str, signature: &str, message: &[u8]) -> Result<(), String> {
    let key_bytes = hex::decode(key).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let verifying = key_bytes
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| format!("`{key}` is not an ed25519 public key"))?;
    let sig_bytes = hex::decode(signature).ok().and_then(|b| <[u8; 64]>::try_from(b).ok());
    let signature =
        sig_bytes.map(|b| Signature::from_bytes(&b)).ok_or("the signature is not 64 hex-encoded bytes")?;
    verifying
        .verify_strict(message, &signature)
        .map_err(|_| format!("the signature is not valid for key {key}"))
}

/// Signs `message` with the key in `key_file`: the public key and the signature, hex.
pub fn sign_message(key_file: &Path, message: &[u8]) -> Result<(String, String), String> {
    let key = read_key(key_file)?;
    let signature = key.sign(message);
    Ok((hex::encode(key.verifying_key().to_bytes()), hex::encode(signature.to_bytes())))
}

/// The environment variable with the operator's trusted public keys (comma-separated).
pub const TRUST_KEYS_ENV: &str = "ROLLBOOK_TRUST_KEYS";

/// The operator's trust policy: the `[trust] keys` of the nearest `rollbook.toml` at or above
/// `dir` (normally the working folder) and the keys of `ROLLBOOK_TRUST_KEYS`. Empty: no policy.
pub fn operator_keys(dir: &Path) -> Result<Vec<String>, LibraryError> {
    let mut keys = env_keys();
    if let Some(file) = super::manifest::find(dir) {
        keys.extend(Manifest::load(&file)?.trust_keys);
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The keys of `ROLLBOOK_TRUST_KEYS`.
pub fn env_keys() -> Vec<String> {
    std::env::var(TRUST_KEYS_ENV)
        .unwrap_or_default()
        .split(',')
        .map(|k| k.trim().to_ascii_lowercase())
        .filter(|k| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_refuses_tampering_and_untrusted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        std::fs::write(lib.join("rollbook.toml"), "[library]\nname = \"p\"\nversion = \"1.0.0\"\n").unwrap();
        std::fs::write(lib.join("a.rhai"), "fn a() { 1 }").unwrap();
        let key_file = dir.path().join("key");
        let public = keygen(&key_file).unwrap();
        let manifest = Manifest::load(&lib.join("rollbook.toml")).unwrap();
        sign(&manifest, &key_file).unwrap();
        assert!(verify(&lib, &[]).is_ok());
        assert!(verify(&lib, std::slice::from_ref(&public)).is_ok());
        assert!(verify(&lib, &["00".repeat(32)]).unwrap_err().contains("not among"));
        // The key file was created 0600, and keygen never writes through an existing path.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let target = dir.path().join("elsewhere");
            let link = dir.path().join("linked.key");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert!(keygen(&link).unwrap_err().contains("exists already"));
            assert!(!target.exists(), "a key was written through a dangling link");
        }
        std::fs::write(lib.join("a.rhai"), "fn a() { 2 }").unwrap();
        assert!(verify(&lib, &[]).unwrap_err().contains("changed after signing"));
    }
}
