//! The rules WSL's validator of modern distributions checks a `.wsl` package against, for
//! `distrod pack`'s output: `distributions/validate-modern.py` of microsoft/WSL at commit
//! 3e27a6a50177ce4e32e72f7b957aef5db5768062, its `read_tar` (what `--tar FILE` runs), and
//! its dependencies' behaviour where a rule rests on them (Python's `tarfile` and
//! `configparser`). Written from reading it, not copied: CI has no copy of the script. Its
//! findings are given in its own words (lists quoted the Rust way), so that a test failure
//! reads like its report.
//!
//! Checked, as the validator does:
//! - the file is a gzip (or xz) compressed tar (its `KNOWN_TAR_FORMATS`);
//! - `/etc/wsl-distribution.conf` is in the tar (error), mode 0644 or 0664, owned by
//!   0:0 (warnings) (the validator follows a symlink there; distrod writes a file);
//! - it parses as `configparser.ConfigParser` parses it (a line before any section, a line
//!   that is not `key = value`, a section or key given twice, a `%` that interpolation
//!   rejects: the validator stops with a Python exception, an error here), and has only
//!   the keys it knows (`oobe.command`, `oobe.defaultUid`, `oobe.defaultName`,
//!   `shortcut.enabled`, `shortcut.icon`, `windowsterminal.enabled`,
//!   `windowsterminal.profileTemplate`, case-insensitive) (error);
//! - `oobe.command`, taken whole as a path, is a member of the tar itself, symlinks not
//!   followed (error), mode 0755 or 0775, owned by 0:0 (warnings), under `/usr/lib/wsl`
//!   or `/usr/libexec/wsl` (warning);
//! - `oobe.defaultUid` is a number (else the validator stops), and not 1000 is a warning;
//! - `shortcut.icon`: absent is a warning; present, the file is in the tar (error), mode
//!   0644/0664, 0:0 (warnings), at most 1 MiB (error), under `/usr/lib/wsl` or
//!   `/usr/share/wsl` (warning); `windowsterminal.profileTemplate` likewise with mode
//!   0640/0660 and under `/usr/lib/wsl`;
//! - `/etc/wsl.conf`, when present: mode and owner (warnings), only the keys WSL knows
//!   (error), `user.default` discouraged (warning);
//! - `/etc/passwd` is in the tar (error), mode 0644/0664, 0:0 (warnings); every line has 7
//!   fields and a numeric uid, no uid twice, uid 0 is root (errors); an account with the
//!   default uid is a warning ("/etc/passwd already has an entry for default uid");
//! - `/etc/shadow` is in the tar (error), mode 0640, 0600 or 0, owned by uid 0 (warnings).
//!
//! Not checked here (they are about the image, not about what distrod adds; the test that
//! runs the real validator by hand reports them): the ELF type of `/bin/sh`, `/bin/bash`
//! and `/sbin/init` (libmagic), the systemd units WSL discourages, xattrs WSL1 lacks.

use std::collections::BTreeMap;
use std::io::Read;

/// WSL's own validator module, repository and commit the rules above were read from.
pub const VALIDATOR: &str = "microsoft/WSL distributions/validate-modern.py \
    @ 3e27a6a50177ce4e32e72f7b957aef5db5768062";

const USR_LIB_WSL: &str = "/usr/lib/wsl";
const USR_LIBEXEC_WSL: &str = "/usr/libexec/wsl";
const USR_SHARE_WSL: &str = "/usr/share/wsl";

/// The keys of wsl-distribution.conf the validator accepts (lower case, as it compares).
const CONF_KEYS: &[&str] = &[
    "oobe.command",
    "oobe.defaultuid",
    "shortcut.icon",
    "shortcut.enabled",
    "oobe.defaultname",
    "windowsterminal.profiletemplate",
    "windowsterminal.enabled",
];

/// The keys of wsl.conf it accepts.
const WSL_CONF_KEYS: &[&str] = &[
    "automount.cgroups",
    "automount.enabled",
    "automount.ldconfig",
    "automount.mountfstab",
    "automount.options",
    "automount.root",
    "boot.command",
    "boot.protectbinfmt",
    "boot.systemd",
    "fileserver.enabled",
    "filesystem.umask",
    "general.hostname",
    "gpu.appendlibpath",
    "gpu.enabled",
    "interop.appendwindowspath",
    "interop.enabled",
    "network.generatehosts",
    "network.generateresolvconf",
    "network.hostname",
    "time.usewindowstimezone",
    "user.default",
];

/// What the rules found, in the validator's words.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// A member of the tar, as `tarfile` gives it.
#[derive(Debug, Clone)]
pub struct Member {
    pub kind: tar::EntryType,
    /// The permission bits of the header (what `TarInfo.mode` is).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub data: Vec<u8>,
}

/// The members by name, `./` and `/` prefixes and a trailing `/` dropped (the validator
/// tries the three spellings); the last of a name wins, as `getmember` has it.
pub fn members(tar_bytes: &[u8]) -> BTreeMap<String, Member> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("read the tar") {
        let mut entry = entry.expect("a tar entry");
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = normalize(&raw);
        let header = entry.header();
        let member = Member {
            kind: header.entry_type(),
            mode: header.mode().expect("a mode") & 0o7777,
            uid: header.uid().expect("a uid"),
            gid: header.gid().expect("a gid"),
            size: entry.size(),
            data: Vec::new(),
        };
        // Only small files are kept: what the rules read is configuration.
        let mut data = Vec::new();
        if member.size <= 1024 * 1024 {
            entry.read_to_end(&mut data).expect("a tar entry's data");
        }
        out.insert(name, Member { data, ..member });
    }
    out
}

fn normalize(path: &str) -> String {
    let p = path.strip_prefix("./").unwrap_or(path);
    p.trim_start_matches('/').trim_end_matches('/').to_owned()
}

/// Checks the package (its file's bytes) against the rules in the module documentation.
pub fn check(package: &[u8]) -> Findings {
    let mut f = Findings::default();
    let tar_bytes = if package.starts_with(b"\x1f\x8b") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(package)
            .read_to_end(&mut out)
            .expect("gunzip the package");
        out
    } else if package.starts_with(b"\xfd7zXZ\0") {
        let mut out = Vec::new();
        liblzma::read::XzDecoder::new(package)
            .read_to_end(&mut out)
            .expect("unxz the package");
        out
    } else {
        f.errors.push("Unknown tar format".into());
        return f;
    };
    check_tar(&members(&tar_bytes), &mut f);
    f
}

/// The rules of the validator's `read_tar`.
pub fn check_tar(tar: &BTreeMap<String, Member>, f: &mut Findings) {
    let mut default_uid = None;
    if let Some(conf) = file(
        tar,
        f,
        "/etc/wsl-distribution.conf",
        &[0o664, 0o644],
        Some(0),
    ) && let Some(keys) = config(f, "/etc/wsl-distribution.conf", &conf.data, CONF_KEYS)
    {
        if let Some(command) = keys.get("oobe.command").filter(|c| !c.is_empty()) {
            file(tar, f, command, &[0o775, 0o755], Some(0));
            if !command.starts_with(USR_LIB_WSL) && !command.starts_with(USR_LIBEXEC_WSL) {
                f.warnings.push(format!(
                    "value for oobe.command is not under {USR_LIB_WSL} or {USR_LIBEXEC_WSL}: \
                     \"{command}\""
                ));
            }
        }
        if let Some(uid) = keys.get("oobe.defaultuid").filter(|u| !u.is_empty()) {
            if uid != "1000" {
                f.warnings
                    .push(format!("Default UID is not 1000. Found: {uid}"));
            }
            match python_int(uid) {
                Some(n) => default_uid = Some(n),
                None => f.errors.push(format!(
                    "ValueError: invalid literal for int() with base 10: '{uid}' (oobe.defaultUid)"
                )),
            }
        }
        match keys.get("shortcut.icon").filter(|i| !i.is_empty()) {
            Some(icon) => {
                if let Some(m) = file(tar, f, icon, &[0o664, 0o644], Some(0)) {
                    too_big(f, icon, m);
                }
                if !icon.starts_with(USR_LIB_WSL) && !icon.starts_with(USR_SHARE_WSL) {
                    f.warnings.push(format!(
                        "value for shortcut.icon is not under {USR_LIB_WSL} or \
                         {USR_SHARE_WSL}: \"{icon}\""
                    ));
                }
            }
            None => f.warnings.push("No shortcut.icon provided".into()),
        }
        if let Some(profile) = keys
            .get("windowsterminal.profiletemplate")
            .filter(|p| !p.is_empty())
        {
            if let Some(m) = file(tar, f, profile, &[0o660, 0o640], Some(0)) {
                too_big(f, profile, m);
            }
            if !profile.starts_with(USR_LIB_WSL) {
                f.warnings.push(format!(
                    "value for windowsterminal.profileTemplate is not under {USR_LIB_WSL}: \
                     \"{profile}\""
                ));
            }
        }
    }

    if tar.contains_key("etc/wsl.conf")
        && let Some(conf) = file(tar, f, "/etc/wsl.conf", &[0o664, 0o644], Some(0))
        && let Some(keys) = config(f, "/etc/wsl.conf", &conf.data, WSL_CONF_KEYS)
        && let Some(user) = keys.get("user.default")
    {
        f.warnings.push(format!(
            "Found discouraged wsl.conf key: user.default={user}"
        ));
    }

    if let Some(passwd) = file(tar, f, "/etc/passwd", &[0o664, 0o644], Some(0)) {
        check_passwd(f, &String::from_utf8_lossy(&passwd.data), default_uid);
    }
    file(tar, f, "/etc/shadow", &[0o640, 0o600, 0], None);
}

/// `validate_mode`: the member at `path` (symlinks not followed), with the mode and owner
/// warnings. `gid` `None`: not checked.
fn file<'a>(
    tar: &'a BTreeMap<String, Member>,
    f: &mut Findings,
    path: &str,
    modes: &[u32],
    gid: Option<u64>,
) -> Option<&'a Member> {
    let Some(m) = tar.get(&normalize(path)) else {
        f.errors.push(format!("File \"{path}\" not found in tar"));
        return None;
    };
    if !modes.contains(&m.mode) {
        let expected: Vec<String> = modes.iter().map(|m| format!("0o{m:o}")).collect();
        f.warnings.push(format!(
            "file: \"{path}\" has unexpected mode: 0o{:o} (expected: {expected:?})",
            m.mode
        ));
    }
    if m.uid != 0 {
        f.warnings.push(format!(
            "file: \"{path}\" has unexpected uid: {} (expected: 0)",
            m.uid
        ));
    }
    if let Some(gid) = gid
        && m.gid != gid
    {
        f.warnings.push(format!(
            "file: \"{path}\" has unexpected gid: {} (expected: {gid})",
            m.gid
        ));
    }
    Some(m)
}

fn too_big(f: &mut Findings, path: &str, m: &Member) {
    if m.size > 1024 * 1024 {
        f.errors.push(format!(
            "file: \"{path}\" is too big ({}), max: {}",
            m.size,
            1024 * 1024
        ));
    }
}

/// `validate_config`: the `section.key` (key lower-cased) values, or `None` (and an
/// error) when configparser would not read it or a key is not in `valid`.
fn config(
    f: &mut Findings,
    path: &str,
    data: &[u8],
    valid: &[&str],
) -> Option<BTreeMap<String, String>> {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => {
            f.errors
                .push(format!("UnicodeDecodeError in \"{path}\": {e}"));
            return None;
        }
    };
    let keys = match parse_ini(text) {
        Ok(keys) => keys,
        Err(e) => {
            f.errors.push(format!("configparser on \"{path}\": {e}"));
            return None;
        }
    };
    let unexpected: Vec<&String> = keys
        .keys()
        .filter(|k| !valid.contains(&k.to_lowercase().as_str()))
        .collect();
    if !unexpected.is_empty() {
        f.errors.push(format!(
            "Found unexpected_keys in \"{path}\": {unexpected:?}"
        ));
    }
    Some(keys)
}

/// What `configparser.ConfigParser()` (its defaults: `=` and `:` delimiters, `#` and `;`
/// whole-line comments, strict, basic interpolation, keys lower-cased) makes of `text`,
/// as `section.key` -> value.
pub fn parse_ini(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut sections: Vec<String> = Vec::new();
    let mut last_key: Option<(String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let stripped = line.trim();
        if stripped.is_empty() {
            last_key = None;
            continue;
        }
        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let Some((key, key_indent)) = &last_key
            && indent > *key_indent
        {
            // A continuation line: part of the value above.
            let v = out.get_mut(key).expect("the key above");
            v.push('\n');
            v.push_str(stripped);
            continue;
        }
        if let Some(rest) = line.strip_prefix('[')
            && let Some(end) = rest.rfind(']')
        {
            let name = &rest[..end];
            if name.is_empty() {
                return Err(format!("ParsingError: line {lineno}: {line:?}"));
            }
            if sections.iter().any(|s| s == name) {
                return Err(format!(
                    "DuplicateSectionError: section {name:?} already exists (line {lineno})"
                ));
            }
            sections.push(name.to_owned());
            last_key = None;
            continue;
        }
        let Some(section) = sections.last() else {
            return Err(format!(
                "MissingSectionHeaderError: File contains no section headers (line {lineno}: \
                 {line:?})"
            ));
        };
        let Some(at) = line.find(['=', ':']) else {
            return Err(format!("ParsingError: line {lineno}: {line:?}"));
        };
        let key = line[..at].trim().to_lowercase();
        let value = line[at + 1..].trim().to_owned();
        if key.is_empty() {
            return Err(format!("ParsingError: line {lineno}: {line:?}"));
        }
        let full = format!("{section}.{key}");
        if out.contains_key(&full) {
            return Err(format!(
                "DuplicateOptionError: option {key:?} in section {section:?} already exists \
                 (line {lineno})"
            ));
        }
        out.insert(full.clone(), value);
        last_key = Some((full, indent));
    }
    for (key, value) in &out {
        // BasicInterpolation: `%%` is a `%`, `%(name)s` a reference; any other `%` fails.
        let mut rest = value.as_str();
        while let Some(at) = rest.find('%') {
            let after = &rest[at + 1..];
            if let Some(escaped) = after.strip_prefix('%') {
                rest = escaped;
            } else if after.starts_with('(') {
                return Err(format!(
                    "InterpolationMissingOptionError: {key} = {value:?} refers to another \
                     option"
                ));
            } else {
                return Err(format!(
                    "InterpolationSyntaxError: '%' must be followed by '%' or '(' in {key} = \
                     {value:?}"
                ));
            }
        }
    }
    Ok(out)
}

/// Python's `int()` of a string: optional sign, decimal digits, `_` between digits,
/// surrounding whitespace.
fn python_int(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// `read_passwd`.
fn check_passwd(f: &mut Findings, passwd: &str, default_uid: Option<u32>) {
    let mut entries: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    // readlines(): every line keeps its newline, so the last field carries it.
    for line in passwd.split_inclusive('\n') {
        let fields: Vec<String> = line.split(':').map(str::to_owned).collect();
        let uid = (fields.len() == 7)
            .then(|| python_int(&fields[2]))
            .flatten();
        let Some(uid) = uid else {
            f.errors.push(format!("Invalid passwd entry: {line}"));
            continue;
        };
        match entries.entry(uid) {
            std::collections::btree_map::Entry::Occupied(_) => f
                .errors
                .push(format!("found duplicated uid in /etc/passw: {uid}")),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(fields);
            }
        }
    }
    match entries.get(&0) {
        None => f.errors.push("No root (uid=0) found in /etc/passwd".into()),
        Some(root) if root[0] != "root" => f.errors.push(format!(
            "/etc/passwd has a uid=0, but it is not root: {}",
            root[0]
        )),
        Some(_) => {}
    }
    if let Some(uid) = default_uid
        && let Some(fields) = entries.get(&uid)
    {
        f.warnings.push(format!(
            "/etc/passwd already has an entry for default uid: {fields:?}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package as a tar of (path, mode, uid, data) files.
    fn package(files: &[(&str, u32, u64, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, uid, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(*mode);
            h.set_uid(*uid);
            h.set_gid(0);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        distrod:x:1000:1000::/home/distrod:/bin/bash\n";
    const SHADOW: &[u8] = b"root:*:19000:0:99999:7:::\n";

    /// What distrod's packages were before the first-start script: the findings the real
    /// validator reported on a pack of the test image (less the units it discourages).
    #[test]
    fn the_findings_of_the_old_first_start_command() {
        let conf = b"# Written by distrod.\n[oobe]\ncommand = /opt/distrod/bin/distrod firstboot\n\
            defaultUid = 1000\ndefaultName = Debian\n\n[shortcut]\nenabled = true\n\n\
            [windowsterminal]\nenabled = true\n";
        let f = check(&package(&[
            ("etc/wsl-distribution.conf", 0o644, 0, conf),
            ("etc/passwd", 0o644, 0, PASSWD),
            ("etc/shadow", 0o640, 0, SHADOW),
        ]));
        assert_eq!(
            f.errors,
            ["File \"/opt/distrod/bin/distrod firstboot\" not found in tar"]
        );
        assert_eq!(
            f.warnings,
            [
                "value for oobe.command is not under /usr/lib/wsl or /usr/libexec/wsl: \
                 \"/opt/distrod/bin/distrod firstboot\"",
                "No shortcut.icon provided",
                "/etc/passwd already has an entry for default uid: [\"distrod\", \"x\", \
                 \"1000\", \"1000\", \"\", \"/home/distrod\", \"/bin/bash\\n\"]",
            ]
        );
    }

    #[test]
    fn a_script_under_usr_lib_wsl_and_a_free_uid() {
        let conf = b"[oobe]\ncommand = /usr/lib/wsl/oobe.sh\ndefaultUid = 1001\n";
        let files = |mode: u32, uid: u64| -> Vec<u8> {
            package(&[
                ("./usr/lib/wsl/oobe.sh", mode, uid, b"#!/bin/sh\n"),
                ("etc/wsl-distribution.conf", 0o644, 0, conf),
                ("etc/passwd", 0o644, 0, PASSWD),
                ("etc/shadow", 0o640, 0, SHADOW),
            ])
        };
        let f = check(&files(0o755, 0));
        assert!(f.errors.is_empty(), "{f:?}");
        assert_eq!(
            f.warnings,
            [
                "Default UID is not 1000. Found: 1001",
                "No shortcut.icon provided"
            ]
        );
        let f = check(&files(0o644, 1000));
        assert_eq!(
            &f.warnings[..2],
            [
                "file: \"/usr/lib/wsl/oobe.sh\" has unexpected mode: 0o644 (expected: \
                 [\"0o775\", \"0o755\"])",
                "file: \"/usr/lib/wsl/oobe.sh\" has unexpected uid: 1000 (expected: 0)",
            ]
        );
    }

    #[test]
    fn configparser_rules() {
        let ok =
            parse_ini("# c\n[oobe]\nCommand = /x\n; c\ndefaultUid: 1000\n[b]\nk=%%\n").unwrap();
        assert_eq!(ok["oobe.command"], "/x");
        assert_eq!(ok["oobe.defaultuid"], "1000");
        for bad in [
            "command = /x\n",
            "[a]\n[a]\n",
            "[a]\nk = 1\nK = 2\n",
            "[a]\njust words\n",
            "[a]\nname = 100%\n",
        ] {
            assert!(parse_ini(bad).is_err(), "{bad:?}");
        }
        let f = check(&package(&[(
            "etc/wsl-distribution.conf",
            0o644,
            0,
            b"[oobe]\ncommand = /usr/lib/wsl/x\n[other]\nkey = 1\n",
        )]));
        assert!(
            f.errors
                .iter()
                .any(|e| e.starts_with("Found unexpected_keys") && e.contains("other.key")),
            "{f:?}"
        );
    }
}
