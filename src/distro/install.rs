//! Putting distrod into a distro and taking it out again: `install`, `update`,
//! `uninstall`. A user downloads one file, the static `distrod`, and runs
//! `sudo ./distrod install` (or `enable`, which installs first).
//!
//! What [`install`] creates, and [`uninstall`] removes:
//! - `/opt/distrod/bin/distrod`, a copy of the running binary, **setuid root** (04755,
//!   root:root). `distrod enable` points login accounts' shells at alias symlinks
//!   (`/opt/distrod/alias/<real shell path>` -> this binary), so a WSL session of a
//!   non-root user runs distrod, which must enter the systemd container (setns: root only)
//!   and then become that user. The setuid bit is safe only because distrod drops its
//!   privileges (back to the real uid and gid) at its first line unless it runs as that
//!   login-shell hook, which itself runs nothing but the user's own shell as the user. As
//!   a second guard, install, update and uninstall here also insist on a real uid of root,
//!   not only an effective one.
//! - the files of the `distrod-rootfs/` overlay embedded at build time ([`OVERLAY`]), all
//!   under `/opt/distrod`;
//! - `distrod` on root's PATH: a symlink `/usr/local/sbin/distrod` (or
//!   `/usr/local/bin/distrod` where there is no `/usr/local/sbin`) to the installed binary;
//! - the directories these needed that did not exist (on a minimal distro `/opt`,
//!   `/usr/local`, `/usr/local/bin`), 0755 root, listed in `/opt/distrod/created-dirs` so
//!   that uninstall leaves the tree exactly as install found it.
//!
//! The binary is only ever replaced by a rename of a complete file written beside it (as a
//! dot-file, owner and mode set and data fsynced before the rename, the directory fsynced
//! after), so a reader sees the old binary or the new one, never a mix. A session already
//! running keeps its old inode; the next session runs the new file, since the alias
//! symlinks name the path.

use std::fs::{self, File, Permissions};
use std::io::{self, ErrorKind, Read, Seek};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fsutil::{self, Durability, Replace, Replacement};
use crate::overlay::OVERLAY;
use crate::runtime::{Context, Error, INSTALL_DIR, INSTALLED_BINARY, Result};
use crate::ui::Ui;

/// Mode of the installed binary: setuid root, see the module documentation.
const BINARY_MODE: u32 = 0o4755;
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// Directories install made outside `/opt/distrod`, one absolute path a line, parents
/// first; uninstall removes those that are empty again, children first.
const CREATED_DIRS: &str = "/opt/distrod/created-dirs";

/// Where the PATH symlink goes: the first of these that exists (sbin: distrod's commands
/// are for root); the last is created when neither exists.
const LINK_DIRS: [&str; 2] = ["/usr/local/sbin", "/usr/local/bin"];

/// The identity `FILE --version` runs as during a check: nobody/nogroup.
const CHECK_UID: u32 = 65534;
const CHECK_GID: u32 = 65534;
/// How long `FILE --version` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of its output a check reads.
const CHECK_OUTPUT_LIMIT: usize = 64 * 1024;

/// What [`install`] did, for the command's output.
#[derive(Debug, Default)]
pub struct Installed {
    /// False when the installed binary already was this one (nothing copied).
    pub copied: bool,
    /// Overlay files written (new or changed).
    pub files_written: Vec<PathBuf>,
    /// The PATH symlink, and whether this run created it.
    pub link: PathBuf,
    /// False when the symlink was already there.
    pub link_created: bool,
    /// Directories created outside `/opt/distrod`.
    pub dirs_created: Vec<PathBuf>,
}

/// What [`update`] did.
#[derive(Debug)]
pub struct Updated {
    /// The new binary's `--version` line.
    pub version: String,
    /// False when the installed binary already had these exact contents.
    pub replaced: bool,
}

/// Installs the running binary, the overlay and the PATH symlink; see the module
/// documentation. Idempotent: a second run changes nothing.
pub fn install(_ui: &Ui) -> Result<Installed> {
    require_real_root("install")?;
    let mut done = Installed::default();
    // Refuse before anything is created when the PATH link's place is taken.
    let link_dir = link_dir();
    done.link = link_dir.join("distrod");
    check_link_place(&done.link)?;

    let bin_dir = Path::new(INSTALLED_BINARY).parent().expect("a parent");
    for dir in [Path::new(INSTALL_DIR), bin_dir] {
        ensure_dir(dir, &mut done.dirs_created)?;
        check_root_only(dir)?;
    }
    record_created_dirs(&done.dirs_created)?;

    done.copied = install_binary()?;
    // The distro's identity, which names its container's cgroup.
    crate::runtime::identity::get();
    for (rel, contents) in OVERLAY {
        let path = overlay_path(rel)?;
        if lay_file(&path, contents)? {
            done.files_written.push(path);
        }
    }

    let mut link_dirs = Vec::new();
    ensure_dir(&link_dir, &mut link_dirs)?;
    record_created_dirs(&link_dirs)?;
    done.dirs_created.extend(link_dirs);
    done.link_created = make_link(&done.link)?;
    Ok(done)
}

/// Whether the running binary is the installed one (the same file, not a copy).
pub fn running_installed() -> bool {
    match (
        fs::metadata("/proc/self/exe"),
        fs::metadata(INSTALLED_BINARY),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Checks that `path` is a distrod binary for this machine and returns its `--version`
/// line; the error says in one line why not. The file must be a static, 64-bit,
/// little-endian ELF executable for this architecture, and running it with `--version`
/// (as nobody, no new privileges, an empty environment, stdin /dev/null, at most 5 s)
/// must print a line starting `distrod `.
pub fn check_binary(path: &Path) -> Result<String> {
    let refuse = |why: String| Error::Other(format!("{}: {why}", path.display()));
    let mut file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let meta = file.metadata().ctx(|| format!("stat {}", path.display()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    check_elf(&mut file, meta.len()).map_err(refuse)?;
    drop(file);
    run_version(path).map_err(refuse)
}

/// Replaces the installed binary with `file` after [`check_binary`] accepted it. The check
/// runs on the copy that is then renamed into place (so what was checked is what gets
/// installed), while that copy is 0755 and not yet setuid.
pub fn update(file: &Path, _ui: &Ui) -> Result<Updated> {
    require_real_root("update")?;
    match fs::symlink_metadata(INSTALLED_BINARY) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(Error::Other(format!(
                "{INSTALLED_BINARY} is not a regular file; run `distrod install` first"
            )));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::Other(format!(
                "distrod is not installed ({INSTALLED_BINARY} does not exist); run \
                 `distrod install` first"
            )));
        }
        Err(e) => return Err(e).ctx(|| format!("stat {INSTALLED_BINARY}")),
    }
    let mut src = File::open(file).ctx(|| format!("open {}", file.display()))?;
    let dest = Path::new(INSTALLED_BINARY);
    let staged = Staged::write(dest, &mut src, 0o755)?;
    let version = check_binary(staged.path()).map_err(|e| match e {
        // Name the user's file, not the copy.
        Error::Other(msg) => Error::Other(msg.replacen(
            &staged.path().display().to_string(),
            &file.display().to_string(),
            1,
        )),
        other => other,
    })?;
    if installed_is(staged.path())? {
        return Ok(Updated {
            version,
            replaced: false,
        });
    }
    staged.set_mode(BINARY_MODE)?;
    staged.commit()?;
    Ok(Updated {
        version,
        replaced: true,
    })
}

/// Removes what [`install`] created, after `enable`'s hook is undone. Refused inside the
/// container, where `/opt/distrod` is the running session's own program.
pub fn uninstall(ui: &Ui) -> Result<()> {
    require_real_root("uninstall")?;
    if crate::runtime::inside_container() {
        let distro = std::env::var("WSL_DISTRO_NAME").unwrap_or_else(|_| "<distro>".into());
        return Err(Error::Other(format!(
            "distrod uninstall cannot run inside the systemd container (this session \
             runs from /opt/distrod); from Windows, run: wsl -d {distro} -u root -e \
             {INSTALLED_BINARY} uninstall"
        )));
    }
    // Restores the login shells and stops the container, so no session is left pointing
    // at what is removed next.
    super::enable::disable_for_uninstall(ui)?;

    let created = read_created_dirs();
    let mut removed_any = false;
    for dir in LINK_DIRS {
        let link = Path::new(dir).join("distrod");
        match fs::read_link(&link) {
            Ok(target) if target == Path::new(INSTALLED_BINARY) => {
                fs::remove_file(&link).ctx(|| format!("remove {}", link.display()))?;
                ui.status(format_args!("removed {}", link.display()));
                removed_any = true;
            }
            Ok(_) => ui.status(format_args!(
                "left {}: it does not point at {INSTALLED_BINARY}",
                link.display()
            )),
            Err(_) => {}
        }
    }
    match fs::symlink_metadata(INSTALL_DIR) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).ctx(|| format!("stat {INSTALL_DIR}")),
        Ok(m) if !m.is_dir() || m.uid() != 0 => {
            return Err(Error::Other(format!(
                "not removing {INSTALL_DIR}: it is not a directory owned by root, so \
                 distrod did not make it"
            )));
        }
        Ok(_) => {
            // remove_dir_all never follows symlinks out of the tree.
            fs::remove_dir_all(INSTALL_DIR).ctx(|| format!("remove {INSTALL_DIR}"))?;
            ui.status(format_args!("removed {INSTALL_DIR}"));
            removed_any = true;
        }
    }
    for dir in created.iter().rev() {
        match fs::remove_dir(dir) {
            Ok(()) => ui.status(format_args!("removed {}", dir.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => ui.status(format_args!(
                "kept {}, which distrod created: it is not empty",
                dir.display()
            )),
            Err(e) => return Err(e).ctx(|| format!("remove {}", dir.display())),
        }
    }
    if !removed_any {
        ui.status("distrod was not installed: nothing to remove");
    }
    Ok(())
}

/// distrod's install commands run with `sudo`, never merely through the setuid bit.
fn require_real_root(command: &'static str) -> Result<()> {
    if nix::unistd::getuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot(command))
    }
}

/// A setuid root binary may only live where nobody but root can swap it: `dir` must be a
/// real directory (not a symlink), owned by root, writable by root alone.
fn check_root_only(dir: &Path) -> Result<()> {
    let m = fs::symlink_metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    if m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0 {
        return Ok(());
    }
    Err(Error::Other(format!(
        "{} must be a directory owned by root and writable by root only, since it holds a \
         setuid root binary: fix it, or remove it and run install again",
        dir.display()
    )))
}

/// `/usr/local/sbin` if it exists, else `/usr/local/bin`.
fn link_dir() -> PathBuf {
    LINK_DIRS
        .iter()
        .map(Path::new)
        .find(|d| d.is_dir())
        .unwrap_or(Path::new(LINK_DIRS[1]))
        .to_path_buf()
}

/// Ok when `link` is free or already distrod's symlink.
fn check_link_place(link: &Path) -> Result<()> {
    let what = match fs::symlink_metadata(link) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("stat {}", link.display())),
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(link).ctx(|| format!("read {}", link.display()))?;
            if target == Path::new(INSTALLED_BINARY) {
                return Ok(());
            }
            format!("a symlink to {}", target.display())
        }
        Ok(m) if m.is_dir() => "a directory".to_owned(),
        Ok(_) => "a file".to_owned(),
    };
    Err(Error::Other(format!(
        "{} is {what}, not distrod's symlink to {INSTALLED_BINARY}: remove it (or move \
         it away) and run install again",
        link.display()
    )))
}

/// Creates the symlink; false when it already was there.
fn make_link(link: &Path) -> Result<bool> {
    check_link_place(link)?;
    if fs::symlink_metadata(link).is_ok() {
        return Ok(false);
    }
    std::os::unix::fs::symlink(INSTALLED_BINARY, link)
        .ctx(|| format!("create the symlink {}", link.display()))?;
    sync_dir(link.parent().expect("a parent"))?;
    Ok(true)
}

/// Creates `dir` and its missing parents (0755, root), adding those outside
/// `/opt/distrod` to `created`. An existing one must be a directory.
fn ensure_dir(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    loop {
        match fs::symlink_metadata(p) {
            Ok(_) => {
                // A symlink to a directory is fine (merged /usr and the like).
                if !p.is_dir() {
                    return Err(Error::Other(format!(
                        "{} exists and is not a directory",
                        p.display()
                    )));
                }
                break;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => missing.push(p.to_path_buf()),
            Err(e) => return Err(e).ctx(|| format!("stat {}", p.display())),
        }
        match p.parent() {
            Some(q) => p = q,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        fs::create_dir(&d).ctx(|| format!("create {}", d.display()))?;
        // Explicitly, whatever the umask: the binary must be reachable by every user.
        std::os::unix::fs::chown(&d, Some(0), Some(0)).ctx(|| format!("chown {}", d.display()))?;
        fs::set_permissions(&d, Permissions::from_mode(DIR_MODE))
            .ctx(|| format!("chmod {}", d.display()))?;
        if !d.starts_with(INSTALL_DIR) {
            created.push(d);
        }
    }
    Ok(())
}

/// Adds `dirs` to the list of created directories (kept inside `/opt/distrod`).
fn record_created_dirs(dirs: &[PathBuf]) -> Result<()> {
    if dirs.is_empty() {
        return Ok(());
    }
    let mut all = read_created_dirs();
    all.extend(dirs.iter().filter(|d| d.is_absolute()).cloned());
    let text: String = all.iter().map(|d| format!("{}\n", d.display())).collect();
    lay_file(Path::new(CREATED_DIRS), text.as_bytes()).map(drop)
}

fn read_created_dirs() -> Vec<PathBuf> {
    fs::read_to_string(CREATED_DIRS)
        .unwrap_or_default()
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .collect()
}

/// The overlay file `rel` at its place in the distro; only paths under `/opt/distrod`.
fn overlay_path(rel: &str) -> Result<PathBuf> {
    let path = Path::new("/").join(rel);
    let clean = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::Normal(_)
        )
    });
    if !clean || !path.starts_with(INSTALL_DIR) || path == Path::new(INSTALL_DIR) {
        return Err(Error::Other(format!(
            "distrod-rootfs/{rel}: only files under {INSTALL_DIR} are installed"
        )));
    }
    Ok(path)
}

/// Writes `contents` at `path` (0644 root, atomically) unless it is there already;
/// true when written.
fn lay_file(path: &Path, contents: &[u8]) -> Result<bool> {
    let parent = path.parent().expect("a parent");
    ensure_dir(parent, &mut Vec::new())?;
    if let Ok(m) = fs::symlink_metadata(path)
        && m.is_file()
        && is_mode(&m, FILE_MODE)
        && fs::read(path).is_ok_and(|c| c == contents)
    {
        return Ok(false);
    }
    Staged::write(path, &mut &contents[..], FILE_MODE)?.commit()?;
    Ok(true)
}

/// Copies the running binary to [`INSTALLED_BINARY`] unless it already is that binary;
/// true when copied.
fn install_binary() -> Result<bool> {
    let dest = Path::new(INSTALLED_BINARY);
    if running_installed() {
        if let Ok(m) = fs::metadata(dest)
            && !is_mode(&m, BINARY_MODE)
        {
            // Put the mode right in place (a chown would clear setuid: owner first).
            std::os::unix::fs::chown(dest, Some(0), Some(0))
                .ctx(|| format!("chown {INSTALLED_BINARY}"))?;
            fs::set_permissions(dest, Permissions::from_mode(BINARY_MODE))
                .ctx(|| format!("chmod {INSTALLED_BINARY}"))?;
        }
        return Ok(false);
    }
    if installed_is(Path::new("/proc/self/exe"))? {
        return Ok(false);
    }
    let mut src = File::open("/proc/self/exe").ctx(|| "open the running binary".into())?;
    Staged::write(dest, &mut src, BINARY_MODE)?.commit()?;
    Ok(true)
}

/// Whether the installed binary is what the login hook needs: a regular file, root's,
/// mode 04755.
pub fn installed_setuid() -> bool {
    fs::symlink_metadata(INSTALLED_BINARY).is_ok_and(|m| m.is_file() && is_mode(&m, BINARY_MODE))
}

/// Whether the installed binary exists, is 04755 root:root and has `other`'s contents.
fn installed_is(other: &Path) -> Result<bool> {
    let Ok(m) = fs::symlink_metadata(INSTALLED_BINARY) else {
        return Ok(false);
    };
    if !m.is_file() || !is_mode(&m, BINARY_MODE) {
        return Ok(false);
    }
    same_contents(Path::new(INSTALLED_BINARY), other)
}

/// Regular-file mode bits and root ownership.
fn is_mode(m: &fs::Metadata, mode: u32) -> bool {
    m.mode() & 0o7777 == mode && m.uid() == 0 && m.gid() == 0
}

fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let mut fa = File::open(a).ctx(|| format!("open {}", a.display()))?;
    let mut fb = File::open(b).ctx(|| format!("open {}", b.display()))?;
    let la = fa.metadata().ctx(|| format!("stat {}", a.display()))?.len();
    let lb = fb.metadata().ctx(|| format!("stat {}", b.display()))?.len();
    if la != lb {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fill(&mut fa, &mut ba).ctx(|| format!("read {}", a.display()))?;
        let m = fill(&mut fb, &mut bb).ctx(|| format!("read {}", b.display()))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end of the file.
fn fill(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("fsync {}", dir.display()))
}

/// A complete new file beside its destination ([`fsutil::Replacement`]), removed unless
/// committed.
struct Staged {
    ready: fsutil::Ready,
    dest: PathBuf,
}

impl Staged {
    /// Writes `src` to the temporary file, root:root with `mode` (the owner explicitly: a
    /// set-group-ID directory would pass its own group on), fsynced and closed (a file still
    /// open for writing cannot be executed). Durable, as the module documentation says.
    fn write(dest: &Path, src: &mut impl Read, mode: u32) -> Result<Staged> {
        let opts = Replace::new(Durability::Durable).owner(0, 0).mode(mode);
        let temp = fsutil::temp_sibling(dest);
        let mut new =
            Replacement::begin(dest, opts).ctx(|| format!("create {}", temp.display()))?;
        let what = || format!("write {}", temp.display());
        io::copy(src, new.file()).ctx(what)?;
        let ready = new.finish().ctx(what)?;
        Ok(Staged {
            ready,
            dest: dest.to_path_buf(),
        })
    }

    fn path(&self) -> &Path {
        self.ready.path()
    }

    fn set_mode(&self, mode: u32) -> Result<()> {
        let f = File::open(self.path()).ctx(|| format!("open {}", self.path().display()))?;
        f.set_permissions(Permissions::from_mode(mode))
            .and_then(|()| f.sync_all())
            .ctx(|| format!("chmod {}", self.path().display()))
    }

    /// Renames the file over its destination and fsyncs the directory.
    fn commit(self) -> Result<()> {
        let dest = self.dest;
        self.ready
            .commit()
            .ctx(|| format!("replace {}", dest.display()))
    }
}

/// The ELF machine of this system: the only one whose binary `distrod update` installs.
#[cfg(target_arch = "x86_64")]
const THIS_MACHINE: u16 = crate::elf::EM_X86_64;
#[cfg(target_arch = "aarch64")]
const THIS_MACHINE: u16 = crate::elf::EM_AARCH64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("distrod runs on WSL2: x86_64 or aarch64");

/// Checks that a file of `len` bytes is a static, 64-bit, little-endian ELF executable for
/// this machine ([`crate::elf::check_static_executable`]); the error is the reason, for one
/// line.
pub fn check_elf(f: &mut (impl Read + Seek), len: u64) -> Result<(), String> {
    crate::elf::check_static_executable(f, len, Some(THIS_MACHINE))
}

/// Runs `path --version` as nobody and returns its first line, which must start with
/// `distrod `.
fn run_version(path: &Path) -> Result<String, String> {
    let mut cmd = Command::new(path);
    cmd.arg("--version")
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // No setuid bit (or file capability) may give the program privileges back.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(CHECK_GID) != 0
                || libc::setuid(CHECK_UID) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run it as an unprivileged user: {e}"))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut buf = [0u8; 4096];
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !crate::runtime::sys::wait_readable(&stdout, left) {
            timed_out = true;
            break;
        }
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if out.len() < CHECK_OUTPUT_LIMIT => out.extend_from_slice(&buf[..n]),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(stdout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if !timed_out && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                // Our own child, not yet reaped: its pid is still its own.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let Some(status) = status else {
        return Err(format!(
            "`--version` did not finish within {} s",
            CHECK_TIMEOUT.as_secs()
        ));
    };
    if !status.success() {
        return Err(
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(c), _) => format!("`--version` exited with status {c}: not a distrod binary"),
                (_, Some(s)) => {
                    format!("`--version` was killed by signal {s}: not a working binary")
                }
                _ => format!("`--version` failed ({status})"),
            },
        );
    }
    let text = String::from_utf8_lossy(&out);
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if !line.starts_with("distrod ") {
        let shown: String = line.chars().take(60).collect();
        return Err(format!(
            "not a distrod binary: `--version` printed {shown:?}, not `distrod <version>`"
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_paths_stay_under_opt_distrod() {
        assert_eq!(
            overlay_path("opt/distrod/share/x").unwrap(),
            Path::new("/opt/distrod/share/x")
        );
        for bad in [
            "etc/distrod.toml",
            "opt/distrod",
            "opt/distrod/../../etc/x",
            "opt/distrodx/y",
        ] {
            assert!(overlay_path(bad).is_err(), "{bad}");
        }
    }
}
