//! Which login accounts `distrod enable` hooks, and the file edits behind enable and
//! disable.
//!
//! WSL starts a session by exec'ing the user's login shell from /etc/passwd. Enabling points
//! that field at an *alias*: for the real shell `/usr/bin/zsh` the alias is the symlink
//! `/opt/distrod/alias/usr/bin/zsh -> /opt/distrod/bin/distrod`. Exec'd through it, distrod
//! reads the alias path (AT_EXECFN), recovers the real shell with [`real_of`] and runs that
//! shell inside the container.
//!
//! # The hook rule
//!
//! An account (a passwd line with 7 fields and a numeric uid) is hooked when
//! - its uid is 0, or lies in UID_MIN..=UID_MAX of /etc/login.defs (default 1000..=60000),
//!   and is not 65534 (nobody), and
//! - its shell field is a login shell: listed in /etc/shells, or empty (which means
//!   /bin/sh), and not a nologin, false, sync, halt or shutdown program (by basename).
//!
//! An account whose shell is already an alias stays as it is when the rule would hook its
//! real shell; otherwise (an alias set by hand for a shell that is not listed in
//! /etc/shells, or for an account outside the range) it is reported as left alone and
//! enable makes no alias and no /etc/shells line for it. An account whose shell changed
//! since (chsh to another listed shell, a user added later) is hooked to the new shell's
//! alias by the next enable, so enable is idempotent and can be run again at any time.
//!
//! # What enable changes, and how disable undoes it
//!
//! - /etc/passwd: only the shell field of hooked lines; every other byte stays.
//! - /etc/shells: the aliases in use are appended, so chsh and pam_shells keep accepting
//!   users whose shell is an alias.
//! - the alias symlinks under [`ALIAS_DIR`].
//! - the record [`RECORD`]: /etc/shells as the first enable found it, the lines enable
//!   appended, and the accounts whose shell field was empty (disable gives them "" back, not
//!   /bin/sh).
//!
//! Disable turns every alias in /etc/passwd back into its real shell (so a shell changed by
//! chsh in between is kept), restores /etc/shells exactly when nobody else edited it (else it
//! only drops the alias lines), and removes the aliases and the record.
//!
//! /etc/passwd and /etc/shells are written under the shadow-utils lock, through a temporary
//! file renamed over the original (same mode and owner), never leaving a backup behind.
//!
//! Every function takes `root`: `/` in production, a scratch tree in tests.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::account::LoginDefs;
use crate::fsutil::{self, Durability, Replace};
use crate::runtime::{Context, Error, INSTALLED_BINARY, Result};

/// Where the alias symlinks live; an alias is this prefix followed by the real shell's path.
pub const ALIAS_DIR: &str = "/opt/distrod/alias";
/// What enable must remember for disable; its presence means distrod is enabled.
pub const RECORD: &str = "/opt/distrod/state/enable.json";

const PASSWD: &str = "/etc/passwd";
const SHELLS: &str = "/etc/shells";
const LOGIN_DEFS: &str = "/etc/login.defs";
/// lckpwdf(3)'s lock file: shadow-utils (useradd, chsh, vipw, ...) take it before writing
/// /etc/passwd.
const PWD_LOCK: &str = "/etc/.pwd.lock";
/// lckpwdf(3) gives up after 15 seconds too.
const LOCK_TIMEOUT: Duration = Duration::from_secs(15);
const NOBODY: u32 = 65534;
/// Shell programs that refuse a login rather than provide one.
const NOT_LOGIN_SHELLS: [&str; 5] = ["nologin", "false", "sync", "halt", "shutdown"];
/// What an empty shell field means (passwd(5)).
const DEFAULT_SHELL: &str = "/bin/sh";

/// The alias of an absolute shell path: `/usr/bin/zsh` -> `/opt/distrod/alias/usr/bin/zsh`.
pub fn alias_of(shell: &str) -> String {
    format!("{ALIAS_DIR}{shell}")
}

/// The real shell behind an alias path, or `None` when `path` is not exactly an alias.
///
/// The path may come from the kernel (AT_EXECFN) in a privileged process, so it is strict:
/// the rest after [`ALIAS_DIR`] must be a plain absolute path (no empty, `.` or `..`
/// components), must not lead back under [`ALIAS_DIR`], and must not be distrod itself.
pub fn real_of(path: &str) -> Option<String> {
    let real = path.strip_prefix(ALIAS_DIR)?;
    if !is_plain_absolute(real) || is_under(real, ALIAS_DIR) || real == INSTALLED_BINARY {
        return None;
    }
    Some(real.to_owned())
}

/// `/a/b`, with no empty, `.` or `..` component and no NUL.
fn is_plain_absolute(p: &str) -> bool {
    !p.contains('\0')
        && p.strip_prefix('/').is_some_and(|rest| {
            rest.split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
        })
}

fn is_under(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Also read from a package's image by `pack` (see [`crate::account`]).
impl LoginDefs {
    /// `root`'s etc/login.defs; a missing file means the defaults.
    pub fn load(root: &Path) -> Result<Self> {
        let path = at(root, LOGIN_DEFS);
        match fs::read(&path) {
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
        }
    }

    /// The uid half of the hook rule.
    pub fn hooks_uid(&self, uid: u32) -> bool {
        uid != NOBODY && (uid == 0 || (self.uid_min..=self.uid_max).contains(&uid))
    }
}

/// What [`enable`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Every hooked account after enable, with its real shell.
    pub hooked: Vec<(String, String)>,
    /// The accounts whose shell field this run changed.
    pub newly_hooked: Vec<String>,
    /// Accounts in the hooked uid range that were left alone, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// What [`disable`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Each account whose alias was replaced, with the shell field it got back.
    pub users: Vec<(String, String)>,
    /// What became of /etc/shells.
    pub shells: ShellsRestored,
}

/// How [`disable`] left /etc/shells, for its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellsRestored {
    /// /etc/shells is again exactly what the first enable found (or gone if it did not exist).
    Original,
    /// Someone else edited /etc/shells since: only the alias lines were removed.
    AliasLinesRemoved,
    /// It held no alias line.
    Unchanged,
}

/// The record at [`RECORD`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// etc/shells as the first enable found it.
    shells_original: Original,
    /// The lines enable appended to etc/shells, in order.
    shells_added: Vec<String>,
    /// Accounts hooked while their shell field was empty.
    empty_shell: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Original {
    Missing,
    Text(String),
    /// Not UTF-8, so not recorded: disable then only removes the alias lines.
    NotRecorded,
}

impl Original {
    fn of(shells: Option<&[u8]>) -> Self {
        match shells {
            None => Original::Missing,
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => Original::Text(s.to_owned()),
                Err(_) => Original::NotRecorded,
            },
        }
    }
}

/// Whether distrod is enabled in `root` (the record exists).
pub fn is_enabled(root: &Path) -> bool {
    at(root, RECORD).exists()
}

/// Hooks every account the rule selects; see the module documentation. Idempotent.
pub fn enable(root: &Path) -> Result<Summary> {
    let defs = LoginDefs::load(root)?;
    let _lock = PwdLock::acquire(root)?;
    // Read under the lock: a concurrent enable (the re-hook unit) may be updating it.
    let old_record = read_record(root)?;
    let passwd_path = at(root, PASSWD);
    let shells_path = at(root, SHELLS);
    let passwd = fs::read(&passwd_path).ctx(|| format!("read {}", passwd_path.display()))?;
    let shells = read_optional(&shells_path)?;

    let plan = plan_enable(&passwd, &listed_shells(shells.as_deref()), defs);

    // Aliases first and passwd last: no account ever points at an alias that is missing,
    // and the record exists before anything it describes is changed.
    for real in &plan.aliases {
        make_alias(root, real)?;
    }
    let aliases: Vec<String> = plan.aliases.iter().map(|r| alias_of(r)).collect();
    let (new_shells, added) = append_shells(shells.as_deref(), &aliases);
    let mut record = old_record.clone().unwrap_or_else(|| Record {
        shells_original: Original::of(shells.as_deref()),
        shells_added: Vec::new(),
        empty_shell: BTreeSet::new(),
    });
    record.shells_added.extend(added);
    for user in &plan.now_empty {
        record.empty_shell.insert(user.clone());
    }
    for user in &plan.now_set {
        record.empty_shell.remove(user);
    }
    if old_record.as_ref() != Some(&record) {
        write_record(root, &record)?;
    }
    if let Some(new) = new_shells {
        replace_file(&shells_path, &new)?;
    }
    if plan.passwd != passwd {
        replace_file(&passwd_path, &plan.passwd)?;
    }
    Ok(plan.summary)
}

/// Undoes [`enable`]; see the module documentation. Running it when not enabled is harmless.
pub fn disable(root: &Path) -> Result<Restored> {
    let _lock = PwdLock::acquire(root)?;
    // An unreadable record must not keep anyone from disabling: without it, empty shell
    // fields come back as /bin/sh and /etc/shells only loses the alias lines.
    let record = read_record(root).ok().flatten();
    let passwd_path = at(root, PASSWD);
    let shells_path = at(root, SHELLS);
    let passwd = fs::read(&passwd_path).ctx(|| format!("read {}", passwd_path.display()))?;
    let empty = record.as_ref().map(|r| &r.empty_shell);

    let mut users = Vec::new();
    let mut out = Vec::with_capacity(passwd.len());
    for (line, ending) in lines(&passwd) {
        let restored = Entry::parse(line).and_then(|e| {
            let real = real_of(std::str::from_utf8(e.shell).ok()?)?;
            let name = String::from_utf8_lossy(e.name).into_owned();
            let field = if real == DEFAULT_SHELL && empty.is_some_and(|s| s.contains(&name)) {
                String::new()
            } else {
                real
            };
            Some((e.with_shell(field.as_bytes()), name, field))
        });
        match restored {
            Some((new_line, name, field)) => {
                out.extend_from_slice(&new_line);
                users.push((name, field));
            }
            None => out.extend_from_slice(line),
        }
        out.extend_from_slice(ending);
    }
    if out != passwd {
        replace_file(&passwd_path, &out)?;
    }

    let current = read_optional(&shells_path)?;
    let shells = match (&current, &record) {
        (None, _) => ShellsRestored::Unchanged,
        (Some(cur), Some(rec)) if is_exactly_enabled(cur, rec) => {
            match &rec.shells_original {
                Original::Text(orig) => {
                    if orig.as_bytes() != cur.as_slice() {
                        replace_file(&shells_path, orig.as_bytes())?;
                    }
                }
                Original::Missing => fs::remove_file(&shells_path)
                    .ctx(|| format!("remove {}", shells_path.display()))?,
                Original::NotRecorded => unreachable!("is_exactly_enabled needs the original"),
            }
            ShellsRestored::Original
        }
        (Some(cur), _) => {
            let kept = without_alias_lines(cur);
            if kept == *cur {
                ShellsRestored::Unchanged
            } else {
                replace_file(&shells_path, &kept)?;
                ShellsRestored::AliasLinesRemoved
            }
        }
    };

    let alias_dir = at(root, ALIAS_DIR);
    match fs::remove_dir_all(&alias_dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).ctx(|| format!("remove {}", alias_dir.display()));
        }
        _ => {}
    }
    let record_path = at(root, RECORD);
    match fs::remove_file(&record_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).ctx(|| format!("remove {}", record_path.display()));
        }
        _ => {}
    }
    if let Some(state_dir) = record_path.parent() {
        // Only if empty: anything else there is not ours to remove.
        let _ = fs::remove_dir(state_dir);
    }
    Ok(Restored { users, shells })
}

/// What enable will do to passwd, decided without touching any file.
struct Plan {
    passwd: Vec<u8>,
    /// Real shells whose alias must exist.
    aliases: BTreeSet<String>,
    /// Accounts hooked from an empty shell field this time.
    now_empty: Vec<String>,
    /// Accounts hooked from a shell field that was not empty this time.
    now_set: Vec<String>,
    summary: Summary,
}

enum Verdict {
    /// The shell field is an alias already.
    Hooked(String),
    /// Hook to this real shell; `true` when the field was empty.
    Hook(String, bool),
    Skip(String),
    /// Outside the uid range: not mentioned.
    Ignore,
}

fn classify(uid: u32, shell: &[u8], listed: &HashSet<String>, defs: LoginDefs) -> Verdict {
    let Ok(shell) = std::str::from_utf8(shell) else {
        return if defs.hooks_uid(uid) {
            Verdict::Skip("its shell field is not valid UTF-8".into())
        } else {
            Verdict::Ignore
        };
    };
    if let Some(real) = real_of(shell) {
        // Adopted only where enable would have hooked the real shell itself: a hand-set
        // alias of a shell that is not a listed login shell (or of an account outside the
        // range) is reported, and gets no alias and no /etc/shells line.
        return match classify(uid, real.as_bytes(), listed, defs) {
            Verdict::Hook(..) => Verdict::Hooked(real),
            Verdict::Skip(why) => {
                Verdict::Skip(format!("its shell is distrod's alias of {real}: {why}"))
            }
            Verdict::Hooked(_) | Verdict::Ignore => Verdict::Skip(format!(
                "its shell is distrod's alias of {real}, but uid {uid} is outside the hooked range"
            )),
        };
    }
    if !defs.hooks_uid(uid) {
        return Verdict::Ignore;
    }
    let (real, empty) = if shell.is_empty() {
        (DEFAULT_SHELL, true)
    } else {
        (shell, false)
    };
    let base = real.rsplit('/').next().unwrap_or(real);
    if NOT_LOGIN_SHELLS.contains(&base) {
        return Verdict::Skip(format!("shell {real} is not a login shell"));
    }
    if !empty && !listed.contains(real) {
        return Verdict::Skip(format!("shell {real} is not listed in /etc/shells"));
    }
    // The hook finds the shell again through real_of, so the alias must round-trip.
    if real_of(&alias_of(real)).as_deref() != Some(real) {
        return Verdict::Skip(format!(
            "shell {real} is not a plain absolute path distrod can run"
        ));
    }
    Verdict::Hook(real.to_owned(), empty)
}

fn plan_enable(passwd: &[u8], listed: &HashSet<String>, defs: LoginDefs) -> Plan {
    let mut plan = Plan {
        passwd: Vec::with_capacity(passwd.len() + 256),
        aliases: BTreeSet::new(),
        now_empty: Vec::new(),
        now_set: Vec::new(),
        summary: Summary::default(),
    };
    for (line, ending) in lines(passwd) {
        let mut new_line = None;
        if let Some(e) = Entry::parse(line) {
            let name = String::from_utf8_lossy(e.name).into_owned();
            match e.uid.map(|uid| classify(uid, e.shell, listed, defs)) {
                Some(Verdict::Hooked(real)) => {
                    plan.aliases.insert(real.clone());
                    plan.summary.hooked.push((name, real));
                }
                Some(Verdict::Hook(real, empty)) => {
                    new_line = Some(e.with_shell(alias_of(&real).as_bytes()));
                    plan.aliases.insert(real.clone());
                    if empty {
                        plan.now_empty.push(name.clone());
                    } else {
                        plan.now_set.push(name.clone());
                    }
                    plan.summary.newly_hooked.push(name.clone());
                    plan.summary.hooked.push((name, real));
                }
                Some(Verdict::Skip(reason)) => plan.summary.skipped.push((name, reason)),
                Some(Verdict::Ignore) | None => {}
            }
        }
        plan.passwd
            .extend_from_slice(new_line.as_deref().unwrap_or(line));
        plan.passwd.extend_from_slice(ending);
    }
    plan
}

/// One passwd(5) line with exactly 7 fields.
struct Entry<'a> {
    line: &'a [u8],
    name: &'a [u8],
    /// `None` when the uid field is not a number (NIS `+` lines and the like).
    uid: Option<u32>,
    shell: &'a [u8],
}

impl<'a> Entry<'a> {
    fn parse(line: &'a [u8]) -> Option<Self> {
        let fields: Vec<&[u8]> = line.split(|b| *b == b':').collect();
        if fields.len() != 7 {
            return None;
        }
        let uid = std::str::from_utf8(fields[2])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok());
        Some(Entry {
            line,
            name: fields[0],
            uid,
            shell: fields[6],
        })
    }

    /// The same line with another shell field; every other byte as it was.
    fn with_shell(&self, shell: &[u8]) -> Vec<u8> {
        let head = &self.line[..self.line.len() - self.shell.len()];
        [head, shell].concat()
    }
}

/// Lines split from their endings ("\n", "\r\n" or nothing on a last line), so that joining
/// them again gives back the exact bytes.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    bytes.split_inclusive(|b| *b == b'\n').map(|l| {
        let content = l.strip_suffix(b"\n").unwrap_or(l);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        l.split_at(content.len())
    })
}

/// The shell named by one /etc/shells line, read as getusershell(3) does: from the first
/// `/` up to white space or `#`; comment lines name none.
fn shells_entry(line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(line).ok()?.trim_start();
    if line.starts_with('#') || !line.starts_with('/') {
        return None;
    }
    line.split(|c: char| c.is_whitespace() || c == '#').next()
}

fn listed_shells(shells: Option<&[u8]>) -> HashSet<String> {
    lines(shells.unwrap_or_default())
        .filter_map(|(l, _)| shells_entry(l))
        .map(str::to_owned)
        .collect()
}

/// etc/shells with the missing `aliases` appended (`None` when nothing is missing), and the
/// lines appended.
fn append_shells(current: Option<&[u8]>, aliases: &[String]) -> (Option<Vec<u8>>, Vec<String>) {
    let listed = listed_shells(current);
    let added: Vec<String> = aliases
        .iter()
        .filter(|a| !listed.contains(a.as_str()))
        .cloned()
        .collect();
    if added.is_empty() {
        return (None, added);
    }
    let mut out = current.unwrap_or_default().to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for a in &added {
        out.extend_from_slice(a.as_bytes());
        out.push(b'\n');
    }
    (Some(out), added)
}

/// Whether `current` is exactly what the enables recorded in `rec` made of the original.
fn is_exactly_enabled(current: &[u8], rec: &Record) -> bool {
    let original = match &rec.shells_original {
        Original::Text(s) => Some(s.as_bytes()),
        Original::Missing => None,
        Original::NotRecorded => return false,
    };
    let expected = append_shells(original, &rec.shells_added)
        .0
        .unwrap_or_else(|| original.unwrap_or_default().to_vec());
    // A missing original with nothing added: there is no file to compare with.
    (original.is_some() || !rec.shells_added.is_empty()) && expected == current
}

fn without_alias_lines(shells: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(shells.len());
    for (line, ending) in lines(shells) {
        if !shells_entry(line).is_some_and(|s| is_under(s, ALIAS_DIR)) {
            out.extend_from_slice(line);
            out.extend_from_slice(ending);
        }
    }
    out
}

/// `root` joined with an absolute path.
fn at(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
    }
}

fn read_record(root: &Path) -> Result<Option<Record>> {
    let path = at(root, RECORD);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::Other(format!(
            "{} is damaged ({e}); run distrod disable, then enable again",
            path.display()
        ))
    })
}

fn write_record(root: &Path, record: &Record) -> Result<()> {
    let path = at(root, RECORD);
    make_dirs(root, Path::new(RECORD).parent().unwrap_or(Path::new("/")))?;
    let mut json = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::Other(format!("encode {}: {e}", path.display())))?;
    json.push(b'\n');
    replace_file(&path, &json)
}

/// Creates the missing directories of absolute `dir` under `root`, each 0755.
fn make_dirs(root: &Path, dir: &Path) -> Result<()> {
    let mut cur = root.to_path_buf();
    for c in dir.components().skip_while(|c| c.as_os_str() == "/") {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(Error::Other(format!(
                    "{} exists and is not a directory",
                    cur.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("stat {}", cur.display())),
        }
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&cur)
            .ctx(|| format!("create {}", cur.display()))?;
        // The umask must not narrow it: every user's login goes through these paths.
        fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
            .ctx(|| format!("chmod {}", cur.display()))?;
    }
    Ok(())
}

/// The alias symlink of `real` (replaced if it points elsewhere).
fn make_alias(root: &Path, real: &str) -> Result<()> {
    let alias = alias_of(real);
    let link = at(root, &alias);
    if fs::read_link(&link).is_ok_and(|t| t == Path::new(INSTALLED_BINARY)) {
        return Ok(());
    }
    make_dirs(root, Path::new(&alias).parent().unwrap_or(Path::new("/")))?;
    // Renamed over, so the alias never vanishes while in use. Durable, like the passwd that
    // is then made to name it: a shell that a crash lost would lock its users out.
    fsutil::replace_symlink(&link, Path::new(INSTALLED_BINARY), Durability::Durable)
        .ctx(|| format!("create the symlink {}", link.display()))
}

/// Replaces `path` by `contents` atomically, with the mode and owner of the file it replaces
/// (0644 for a new file): the distro's own choices for its account files stay. Durable:
/// every login reads these files, so what `enable` or `disable` wrote must outlive a crash.
fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    let opts = Replace::new(Durability::Durable)
        .mode(0o644)
        .keep_existing();
    fsutil::replace_file(path, opts, |f| f.write_all(contents))
        .ctx(|| format!("write {}", path.display()))
}

/// The shadow-utils lock: the same fcntl write lock on etc/.pwd.lock that lckpwdf(3) takes,
/// held until dropped.
struct PwdLock {
    path: PathBuf,
    file: File,
    /// The lock file did not exist before: remove it again, so that distrod leaves no file
    /// behind that was not there.
    created: bool,
}

impl PwdLock {
    fn acquire(root: &Path) -> Result<Self> {
        let path = at(root, PWD_LOCK);
        let (file, created) = loop {
            match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => break (f, false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
            }
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => break (f, true),
                // Someone else created it in between: open theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).ctx(|| format!("create {}", path.display())),
            }
        };
        let lock = PwdLock {
            path,
            file,
            created,
        };
        let flock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        // F_SETLK polled rather than F_SETLKW: the same lock, but with lckpwdf's time limit
        // instead of waiting forever behind, say, an open vipw.
        let start = Instant::now();
        loop {
            match nix::fcntl::fcntl(&lock.file, nix::fcntl::FcntlArg::F_SETLK(&flock)) {
                Ok(_) => return Ok(lock),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES)
                    if start.elapsed() < LOCK_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(e).ctx(|| {
                        format!(
                            "lock {} (is vipw, useradd or chsh running?)",
                            lock.path.display()
                        )
                    });
                }
            }
        }
    }
}

impl Drop for PwdLock {
    fn drop(&mut self) {
        // Still locked here (the file closes after this): nobody else is mid-update.
        if self.created {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHELLS_TEXT: &str = "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/usr/bin/bash\n/usr/bin/zsh\n/bin/false\n/usr/sbin/nologin\n";

    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new(passwd: &str, shells: Option<&str>) -> Tree {
            let t = Tree(tempfile::tempdir().unwrap());
            fs::create_dir_all(t.path("/etc")).unwrap();
            fs::write(t.path(PASSWD), passwd).unwrap();
            if let Some(s) = shells {
                fs::write(t.path(SHELLS), s).unwrap();
            }
            t
        }
        fn root(&self) -> &Path {
            self.0.path()
        }
        fn path(&self, abs: &str) -> PathBuf {
            at(self.root(), abs)
        }
        fn read(&self, abs: &str) -> String {
            fs::read_to_string(self.path(abs)).unwrap()
        }
        fn write(&self, abs: &str, text: &str) {
            fs::write(self.path(abs), text).unwrap()
        }
        /// Every file under the tree except the directories distrod may leave (opt/distrod).
        fn files(&self) -> Vec<String> {
            let mut v = Vec::new();
            walk(self.root(), self.root(), &mut v);
            v.sort();
            v
        }
    }

    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }

    fn shell_of(passwd: &str, user: &str) -> String {
        passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f[0] == user).then(|| f[6].to_owned())
            })
            .unwrap()
    }

    fn names(v: &[(String, String)]) -> Vec<&str> {
        v.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn alias_paths_round_trip() {
        assert_eq!(alias_of("/usr/bin/zsh"), "/opt/distrod/alias/usr/bin/zsh");
        assert_eq!(
            real_of("/opt/distrod/alias/usr/bin/zsh").as_deref(),
            Some("/usr/bin/zsh")
        );
        assert_eq!(
            real_of("/opt/distrod/alias/bin/sh").as_deref(),
            Some("/bin/sh")
        );
    }

    #[test]
    fn real_of_is_strict() {
        for bad in [
            "/opt/distrod/alias/../../bin/sh",
            "/opt/distrod/alias/bin/../sh",
            "/opt/distrod/alias/./bin/sh",
            "/opt/distrod/aliasX/bin/sh",
            "/opt/distrod/alias/opt/distrod/alias/bin/sh",
            "/opt/distrod/alias/opt/distrod/alias",
            "/opt/distrod/alias/opt/distrod/bin/distrod",
            "/opt/distrod/alias",
            "/opt/distrod/alias/",
            "/opt/distrod/alias//bin/sh",
            "/opt/distrod/alias/bin/sh/",
            "/opt/distrod/alias/bin/s\0h",
            "opt/distrod/alias/bin/sh",
            "alias/bin/sh",
            "./opt/distrod/alias/bin/sh",
            "/bin/sh",
            "",
        ] {
            assert_eq!(real_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn login_defs() {
        assert_eq!(LoginDefs::parse(""), LoginDefs::default());
        let d = LoginDefs::parse(
            "# UID_MIN 5\nMAIL_DIR /var/mail\nUID_MIN\t\t 500\nUID_MAX 0x7530\nUID_MIN 600\n",
        );
        assert_eq!(
            d,
            LoginDefs {
                uid_min: 600,
                uid_max: 30000
            }
        );
        assert_eq!(LoginDefs::parse("UID_MIN lots\n").uid_min, 1000);
        assert_eq!(LoginDefs::parse("UID_MAX 0144\n").uid_max, 100);

        let t = Tree::new("", None);
        assert_eq!(LoginDefs::load(t.root()).unwrap(), LoginDefs::default());
        t.write(LOGIN_DEFS, "UID_MIN 2000\n");
        assert_eq!(LoginDefs::load(t.root()).unwrap().uid_min, 2000);
    }

    #[test]
    fn the_hook_rule() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
            daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
            sys999:x:999:999::/var/lib/sys:/bin/bash\n\
            nobody:x:65534:65534:nobody:/nonexistent:/bin/bash\n\
            alice:x:1000:1000::/home/alice:/bin/bash\n\
            bob:x:1001:1001::/home/bob:\n\
            carol:x:1002:1002::/home/carol:/usr/sbin/nologin\n\
            dave:x:1003:1003::/home/dave:/bin/false\n\
            erin:x:1004:1004::/home/erin:/usr/local/bin/fish\n\
            frank:x:1005:1005::/home/frank:/usr/bin/zsh\n\
            +::::::\n\
            short:x:1006:1006::/home/short\n\
            high:x:60001:60001::/home/high:/bin/bash\n";
        let t = Tree::new(passwd, Some(SHELLS_TEXT));
        let s = enable(t.root()).unwrap();
        assert_eq!(
            s.hooked,
            [
                ("root", "/bin/bash"),
                ("alice", "/bin/bash"),
                ("bob", "/bin/sh"),
                ("frank", "/usr/bin/zsh")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(s.newly_hooked, ["root", "alice", "bob", "frank"]);
        assert_eq!(
            s.skipped,
            [
                ("carol", "shell /usr/sbin/nologin is not a login shell"),
                ("dave", "shell /bin/false is not a login shell"),
                (
                    "erin",
                    "shell /usr/local/bin/fish is not listed in /etc/shells"
                ),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let after = t.read(PASSWD);
        assert_eq!(shell_of(&after, "root"), "/opt/distrod/alias/bin/bash");
        assert_eq!(shell_of(&after, "alice"), "/opt/distrod/alias/bin/bash");
        assert_eq!(shell_of(&after, "bob"), "/opt/distrod/alias/bin/sh");
        assert_eq!(shell_of(&after, "frank"), "/opt/distrod/alias/usr/bin/zsh");
        for (user, shell) in [
            ("daemon", "/usr/sbin/nologin"),
            ("sys999", "/bin/bash"),
            ("nobody", "/bin/bash"),
            ("carol", "/usr/sbin/nologin"),
            ("dave", "/bin/false"),
            ("erin", "/usr/local/bin/fish"),
            ("high", "/bin/bash"),
        ] {
            assert_eq!(shell_of(&after, user), shell, "{user}");
        }
        assert!(after.contains("\n+::::::\nshort:x:1006:1006::/home/short\n"));

        // Only the shell fields changed.
        let before_lines: Vec<&str> = passwd.lines().collect();
        for (a, b) in before_lines.iter().zip(after.lines()) {
            let (a, b) = (a.rsplit_once(':'), b.rsplit_once(':'));
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(a.0, b.0);
            }
        }

        // The aliases exist, point at distrod, and are listed in /etc/shells.
        for real in ["/bin/bash", "/bin/sh", "/usr/bin/zsh"] {
            let link = t.path(&alias_of(real));
            assert_eq!(fs::read_link(&link).unwrap(), Path::new(INSTALLED_BINARY));
        }
        assert_eq!(
            t.read(SHELLS),
            format!(
                "{SHELLS_TEXT}/opt/distrod/alias/bin/bash\n/opt/distrod/alias/bin/sh\n/opt/distrod/alias/usr/bin/zsh\n"
            )
        );
        let mode = |p: &str| fs::metadata(t.path(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("/opt/distrod/alias/usr/bin"), 0o755);
        assert_eq!(mode("/opt/distrod"), 0o755);
        assert!(is_enabled(t.root()));
    }

    /// Aliases set by hand are adopted only for shells and accounts the rule hooks.
    #[test]
    fn hand_set_aliases_follow_the_rule() {
        let passwd = "m:x:1001:1001::/home/m:/opt/distrod/alias/usr/bin/fish\n\
            n:x:1002:1002::/home/n:/opt/distrod/alias/bin/bash\n\
            s:x:999:999::/:/opt/distrod/alias/bin/bash\n\
            z:x:1003:1003::/:/opt/distrod/alias/usr/sbin/nologin\n";
        let t = Tree::new(passwd, Some(SHELLS_TEXT));
        let s = enable(t.root()).unwrap();
        assert_eq!(names(&s.hooked), ["n"]);
        assert_eq!(
            s.skipped,
            [
                (
                    "m",
                    "its shell is distrod's alias of /usr/bin/fish: shell /usr/bin/fish is \
                     not listed in /etc/shells"
                ),
                (
                    "s",
                    "its shell is distrod's alias of /bin/bash, but uid 999 is outside the \
                     hooked range"
                ),
                (
                    "z",
                    "its shell is distrod's alias of /usr/sbin/nologin: shell \
                     /usr/sbin/nologin is not a login shell"
                ),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(t.read(PASSWD), passwd, "nothing to change in passwd");
        assert_eq!(
            t.read(SHELLS),
            format!("{SHELLS_TEXT}/opt/distrod/alias/bin/bash\n")
        );
        assert!(!t.path(&alias_of("/usr/bin/fish")).exists());
    }

    #[test]
    fn uid_range_follows_login_defs_but_never_nobody() {
        let passwd = "nobody:x:65534:65534::/:/bin/bash\nsys:x:500:500::/:/bin/bash\nu:x:2000:2000::/:/bin/bash\n";
        let t = Tree::new(passwd, Some(SHELLS_TEXT));
        t.write(LOGIN_DEFS, "UID_MIN 500\nUID_MAX 65535\n");
        let s = enable(t.root()).unwrap();
        assert_eq!(s.newly_hooked, ["sys", "u"]);
        assert!(s.skipped.is_empty());
        assert_eq!(shell_of(&t.read(PASSWD), "nobody"), "/bin/bash");
    }

    #[test]
    fn odd_shells_are_skipped() {
        let shells = "/bin/bash\n/usr/bin/../bin/bash\nrelative/sh\n/opt/distrod/bin/distrod\n/opt/distrod/alias/opt/distrod/alias/bin/sh\n";
        let passwd = "a:x:1000:1000::/:/usr/bin/../bin/bash\n\
            b:x:1001:1001::/:relative/sh\n\
            c:x:1002:1002::/:/opt/distrod/bin/distrod\n\
            d:x:1003:1003::/:/opt/distrod/alias/opt/distrod/alias/bin/sh\n\
            e:x:1004:1004::/:/bin/bash\n";
        let t = Tree::new(passwd, Some(shells));
        let s = enable(t.root()).unwrap();
        assert_eq!(s.newly_hooked, ["e"]);
        assert_eq!(names(&s.skipped), ["a", "b", "c", "d"]);
        let after = t.read(PASSWD);
        assert_eq!(
            after.lines().take(4).collect::<Vec<_>>(),
            passwd.lines().take(4).collect::<Vec<_>>()
        );
    }

    fn round_trip(passwd: &str, shells: Option<&str>) {
        let t = Tree::new(passwd, shells);
        let files_before = t.files();
        let s = enable(t.root()).unwrap();
        assert!(!s.newly_hooked.is_empty());
        assert_ne!(t.read(PASSWD), passwd);
        let r = disable(t.root()).unwrap();
        assert_eq!(r.shells, ShellsRestored::Original);
        assert_eq!(t.read(PASSWD), passwd);
        match shells {
            Some(s) => assert_eq!(t.read(SHELLS), s),
            None => assert!(!t.path(SHELLS).exists()),
        }
        assert!(!is_enabled(t.root()));
        assert!(!t.path(ALIAS_DIR).exists());
        assert!(!t.path("/opt/distrod/state").exists());
        // No lock file, backup or temporary file left behind.
        assert_eq!(t.files(), files_before);
    }

    #[test]
    fn enable_then_disable_restores_the_exact_bytes() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
            daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
            alice:x:1000:1000:Alice \u{e9},,,:/home/alice:/bin/bash\n\
            bob:x:1001:1001::/home/bob:\n";
        round_trip(passwd, Some(SHELLS_TEXT));
        // No final newline in either file.
        round_trip(passwd.trim_end(), Some(SHELLS_TEXT.trim_end()));
        // CRLF lines, an empty shells file, no shells file at all.
        round_trip(&passwd.replace('\n', "\r\n"), Some(SHELLS_TEXT));
        round_trip("bob:x:1001:1001::/home/bob:\n", Some(""));
        round_trip("bob:x:1001:1001::/home/bob:", None);
    }

    #[test]
    fn passwd_bytes_that_are_not_utf8_survive() {
        let mut passwd = b"alice:x:1000:1000:Ren\xe9:/home/alice:/bin/bash\n".to_vec();
        passwd.extend_from_slice(b"weird:x:1001:1001::/:/bin/\xff\n");
        let t = Tree::new("", Some(SHELLS_TEXT));
        fs::write(t.path(PASSWD), &passwd).unwrap();
        let s = enable(t.root()).unwrap();
        assert_eq!(s.newly_hooked, ["alice"]);
        assert_eq!(names(&s.skipped), ["weird"]);
        disable(t.root()).unwrap();
        assert_eq!(fs::read(t.path(PASSWD)).unwrap(), passwd);
    }

    #[test]
    fn enable_is_idempotent() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:\n";
        let t = Tree::new(passwd, Some(SHELLS_TEXT));
        let first = enable(t.root()).unwrap();
        let snapshot = |t: &Tree| (t.read(PASSWD), t.read(SHELLS), t.read(RECORD), t.files());
        let once = snapshot(&t);
        let second = enable(t.root()).unwrap();
        assert_eq!(snapshot(&t), once);
        assert_eq!(second.hooked, first.hooked);
        assert!(second.newly_hooked.is_empty());
        // A missing alias is made again.
        fs::remove_file(t.path(&alias_of("/bin/sh"))).unwrap();
        enable(t.root()).unwrap();
        assert_eq!(snapshot(&t), once);
    }

    #[test]
    fn chsh_is_hooked_again_and_kept_by_disable() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:\n";
        let t = Tree::new(passwd, Some(SHELLS_TEXT));
        enable(t.root()).unwrap();
        // chsh -s /usr/bin/zsh alice; chsh -s /bin/bash bob
        let changed = t
            .read(PASSWD)
            .replace(
                "/home/alice:/opt/distrod/alias/bin/bash",
                "/home/alice:/usr/bin/zsh",
            )
            .replace("/home/bob:/opt/distrod/alias/bin/sh", "/home/bob:/bin/bash");
        t.write(PASSWD, &changed);
        let s = enable(t.root()).unwrap();
        assert_eq!(s.newly_hooked, ["alice", "bob"]);
        let after = t.read(PASSWD);
        assert_eq!(shell_of(&after, "alice"), "/opt/distrod/alias/usr/bin/zsh");
        assert_eq!(shell_of(&after, "bob"), "/opt/distrod/alias/bin/bash");
        let r = disable(t.root()).unwrap();
        assert_eq!(r.shells, ShellsRestored::Original);
        let expected = passwd
            .replace("/home/alice:/bin/bash", "/home/alice:/usr/bin/zsh")
            .replace("/home/bob:", "/home/bob:/bin/bash");
        assert_eq!(t.read(PASSWD), expected);
        assert_eq!(t.read(SHELLS), SHELLS_TEXT);
    }

    #[test]
    fn users_added_later_are_hooked_by_the_next_enable() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n";
        let t = Tree::new(passwd, Some(SHELLS_TEXT));
        enable(t.root()).unwrap();
        // useradd -s /usr/bin/zsh carol; useradd dan (no shell)
        let added = t.read(PASSWD)
            + "carol:x:1000:1000::/home/carol:/usr/bin/zsh\ndan:x:1001:1001::/home/dan:\n";
        t.write(PASSWD, &added);
        let s = enable(t.root()).unwrap();
        assert_eq!(s.newly_hooked, ["carol", "dan"]);
        assert_eq!(names(&s.hooked), ["root", "carol", "dan"]);
        assert!(t.path(&alias_of("/usr/bin/zsh")).is_symlink());
        let r = disable(t.root()).unwrap();
        assert_eq!(
            r.users,
            [
                ("root", "/bin/bash"),
                ("carol", "/usr/bin/zsh"),
                ("dan", "")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(
            t.read(PASSWD),
            "root:x:0:0:root:/root:/bin/bash\ncarol:x:1000:1000::/home/carol:/usr/bin/zsh\ndan:x:1001:1001::/home/dan:\n"
        );
        assert_eq!(t.read(SHELLS), SHELLS_TEXT);
    }

    #[test]
    fn shells_edited_by_someone_else_only_lose_the_alias_lines() {
        let t = Tree::new("root:x:0:0::/root:/bin/bash\n", Some(SHELLS_TEXT));
        enable(t.root()).unwrap();
        // add-shell /usr/bin/fish
        let edited = t.read(SHELLS) + "/usr/bin/fish\n";
        t.write(SHELLS, &edited);
        let r = disable(t.root()).unwrap();
        assert_eq!(r.shells, ShellsRestored::AliasLinesRemoved);
        assert_eq!(t.read(SHELLS), format!("{SHELLS_TEXT}/usr/bin/fish\n"));
        assert_eq!(t.read(PASSWD), "root:x:0:0::/root:/bin/bash\n");
    }

    #[test]
    fn disable_without_a_record_still_undoes_the_hook() {
        let t = Tree::new("root:x:0:0::/root:/bin/bash\n", Some(SHELLS_TEXT));
        enable(t.root()).unwrap();
        t.write(RECORD, "{ not json");
        assert!(enable(t.root()).is_err());
        let r = disable(t.root()).unwrap();
        assert_eq!(r.shells, ShellsRestored::AliasLinesRemoved);
        assert_eq!(t.read(PASSWD), "root:x:0:0::/root:/bin/bash\n");
        assert_eq!(t.read(SHELLS), SHELLS_TEXT);
        assert!(!is_enabled(t.root()));
        // And once more, with nothing to do.
        let r = disable(t.root()).unwrap();
        assert_eq!(r.shells, ShellsRestored::Unchanged);
        assert!(r.users.is_empty());
    }

    #[test]
    fn files_keep_mode_and_an_existing_lock_file_stays() {
        let t = Tree::new("root:x:0:0::/root:/bin/bash\n", Some(SHELLS_TEXT));
        fs::set_permissions(t.path(SHELLS), fs::Permissions::from_mode(0o640)).unwrap();
        t.write(PWD_LOCK, "");
        enable(t.root()).unwrap();
        let mode = |p: &str| fs::metadata(t.path(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(SHELLS), 0o640);
        assert!(t.path(PWD_LOCK).exists());
        assert!(!t.path("/etc/passwd-").exists());
    }

    #[test]
    fn the_lock_excludes_a_second_holder() {
        let t = Tree::new("", None);
        let held = PwdLock::acquire(t.root()).unwrap();
        assert!(held.created);
        let path = t.path(PWD_LOCK);
        let f = File::open(&path).unwrap();
        let mut query = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        // F_GETLK from the holder's own process reports no conflict, so ask for the lock as
        // an open file description lock, which does conflict with the process's own lock.
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_OFD_GETLK(&mut query)).unwrap();
        assert_eq!(query.l_type, libc::F_WRLCK as libc::c_short);
        drop(held);
        assert!(!path.exists());
    }
}
