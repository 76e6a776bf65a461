//! Files and directories that hold secrets or recordings, readable by their owner only:
//! directories 0700, files 0600, whatever the process umask.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) as 0700, or tightens an existing `dir` that others
/// could read or enter.
pub fn dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            tracing::warn!(dir = %dir.display(), mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "others could read this directory; setting it to 0700");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new().recursive(true).mode(0o700).create(dir),
        Err(e) => Err(e),
    }
}

/// Creates the new file `path` as 0600; fails if it exists.
pub fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).read(true).create_new(true).mode(0o600).open(path)
}

/// Opens `path` for appending, creating it as 0600.
pub fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Writes the new file `path` (0600) with `contents`, durably.
pub fn write_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Replaces `path` with `contents` (0600) as a whole: written durably beside it, then
/// renamed over it, so a crash leaves the old file or the new one, never a mix.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut next = path.as_os_str().to_owned();
    next.push(".next");
    let next = std::path::PathBuf::from(next);
    let _ = std::fs::remove_file(&next);
    write_new(&next, contents)?;
    std::fs::rename(&next, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_0700_and_files_0600_whatever_existed() {
        let root = std::env::temp_dir().join(format!("airlock-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let nested = root.join("a/b");
        dir(&nested).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&nested), 0o700);
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        write_new(&nested.join("key"), b"k").unwrap();
        append(&nested.join("log")).unwrap();
        assert_eq!((mode(&nested.join("key")), mode(&nested.join("log"))), (0o600, 0o600));
        assert!(create(&nested.join("key")).is_err(), "an existing file is never reused");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
