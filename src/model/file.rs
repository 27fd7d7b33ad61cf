//! Reading the files a person hands rollbook (runbooks, modules, scenarios): regular files only,
//! and never more than a few MiB, so `/dev/zero` or a FIFO cannot exhaust memory or hang a run.

use std::io::Read;
use std::path::Path;

/// The largest runbook, module or scenario file rollbook reads: 4 MiB.
pub const MAX_INPUT_FILE: u64 = 4 * 1024 * 1024;

/// Reads `path` as UTF-8 text if it is a regular file of at most [`MAX_INPUT_FILE`] bytes.
pub fn read_input_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    // `metadata` first: opening a FIFO for reading would block until a writer comes.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_big = || {
        Error::new(ErrorKind::InvalidInput, format!("larger than the limit of {} MiB", MAX_INPUT_FILE >> 20))
    };
    if meta.len() > MAX_INPUT_FILE {
        return Err(too_big());
    }
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_FILE {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Creates `dir` and any missing parents with owner-only permissions (0700 on unix), so there
/// is no moment at which they are open to others. Existing folders are left as they are.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the new file `path` (never through an existing file or link) with owner-only
/// permissions (0600 on unix) from the first byte, for writing.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The files under `dir` (searched depth first, each folder's entries in sorted order) that
/// `keep` accepts; a folder that cannot be listed is skipped.
pub fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    walk(dir, keep, &mut out);
    out
}

fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<std::path::PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn files_under_walks_depth_first_in_sorted_order_keeping_what_is_asked() {
        let dir = tempfile::tempdir().expect("a temp dir");
        for rel in ["b.rhai", "a/z.rhai", "a/y.txt", "c/d/x.rhai"] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, "").expect("write");
        }
        let found = files_under(dir.path(), &|p| p.extension().is_some_and(|e| e == "rhai"));
        let rel: Vec<_> = found.iter().map(|p| p.strip_prefix(dir.path()).expect("inside")).collect();
        assert_eq!(rel, ["a/z.rhai", "b.rhai", "c/d/x.rhai"].map(std::path::Path::new));
        assert!(files_under(&dir.path().join("missing"), &|_| true).is_empty());
    }

    use super::*;

    #[test]
    fn refuses_devices_folders_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_input_file(dir.path()).unwrap_err().to_string().contains("not a regular file"));
        if Path::new("/dev/zero").exists() {
            assert!(read_input_file(Path::new("/dev/zero")).unwrap_err().to_string().contains("regular"));
        }
        let big = dir.path().join("big.rhai");
        std::fs::write(&big, vec![b' '; (MAX_INPUT_FILE + 1) as usize]).unwrap();
        assert!(read_input_file(&big).unwrap_err().to_string().contains("4 MiB"));
        let ok = dir.path().join("ok.rhai");
        std::fs::write(&ok, "let x = 1;").unwrap();
        assert_eq!(read_input_file(&ok).unwrap(), "let x = 1;");
    }
}
