//! The logon entry, defined once for both of its writers: `distrod enable
//! --start-on-windows-boot` inside a distro (through `reg.exe`, see
//! `crate::distro::logon`) and `distrod.exe autostart` on Windows (through the registry
//! API, see `crate::windows::autostart`). Both write the same value, so each recognises and
//! replaces the other's entry.
//!
//! The entry is a value named `distrod-<distro>` under
//! `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, which Windows runs at logon for
//! that user only (no administrator rights, no task, no stored password). It runs
//! `wsl.exe -d <distro> -u root -e /opt/distrod/bin/distrod launch [--keep-alive]` under
//! `conhost.exe --headless`, so no window opens: systemd starts, and with `--keep-alive`
//! the command stays until the container stops, so WSL does not stop the idle distro.
//! Everything it names is in Windows' System32 or in the distro itself, so nothing has to
//! stay where a downloaded distrod.exe was.

/// The key Windows runs at logon, per user, as `reg.exe` names it.
pub const RUN_KEY: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";

/// [`RUN_KEY`] below `HKEY_CURRENT_USER`, as the registry API opens it.
pub const RUN_SUBKEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";

/// The distrod the entry runs, inside the distro (where `distrod install` puts it).
pub const DISTROD_IN_DISTRO: &str = "/opt/distrod/bin/distrod";

/// The prefix of every entry's value name.
const VALUE_PREFIX: &str = "distrod-";

/// Starting a distro at logon: the per-user logon entry, kept by one of its writers (on
/// Windows, the registry API: `crate::windows::autostart::RunKey`).
pub trait Autostart {
    /// Adds (or replaces) the entry for `name`.
    fn enable(&self, name: &str, keep_alive: bool) -> anyhow::Result<()>;
    /// Removes the entry for `name`; whether there was one.
    fn disable(&self, name: &str) -> anyhow::Result<bool>;
    /// The command the entry for `name` runs, if there is one.
    fn status(&self, name: &str) -> anyhow::Result<Option<String>>;
}

/// The registry value's name for a distro.
pub fn value_name(distro: &str) -> String {
    format!("{VALUE_PREFIX}{distro}")
}

/// Distro names WSL allows (letters, digits, `.`, `_`, `-`), which need no quoting in the
/// entry.
pub fn check_distro(name: &str) -> Result<(), String> {
    if name.is_empty() || !crate::wsl::name_chars_ok(name) {
        return Err(format!(
            "the distro name {name:?} cannot be used in a logon entry"
        ));
    }
    Ok(())
}

/// The command the entry runs; `system32` is the Windows path of System32 (the directory
/// of conhost.exe, wsl.exe and reg.exe). `distro` must pass [`check_distro`].
pub fn command_line(system32: &str, distro: &str, keep_alive: bool) -> String {
    let conhost = quoted(&format!("{system32}\\conhost.exe"));
    let wsl = quoted(&format!("{system32}\\wsl.exe"));
    format!(
        "{conhost} --headless {wsl} -d {distro} -u root -e {DISTROD_IN_DISTRO} launch{}",
        if keep_alive { " --keep-alive" } else { "" }
    )
}

/// A path as one word of a command line: in double quotes when it has a space.
fn quoted(path: &str) -> String {
    if path.contains(char::is_whitespace) {
        format!("\"{path}\"")
    } else {
        path.to_string()
    }
}

/// A logon entry, as read back from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The distro it starts.
    pub distro: String,
    /// Whether it keeps the distro running (`launch --keep-alive`).
    pub keep_alive: bool,
}

impl Entry {
    /// The entry of the value `name` holding `data`, if it is one of [`command_line`]'s
    /// (written by either side) for the distro its name says.
    pub fn parse(name: &str, data: &str) -> Option<Entry> {
        let distro = name.strip_prefix(VALUE_PREFIX)?;
        let words = words(data)?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let (keep_alive, words) = match words.split_last() {
            Some((&"--keep-alive", rest)) => (true, rest),
            _ => (false, &words[..]),
        };
        let [
            conhost,
            "--headless",
            wsl,
            "-d",
            d,
            "-u",
            "root",
            "-e",
            DISTROD_IN_DISTRO,
            "launch",
        ] = words
        else {
            return None;
        };
        let named = |path: &str, file: &str| {
            let path = path.to_ascii_lowercase();
            path == file || path.ends_with(&format!("\\{file}"))
        };
        (named(conhost, "conhost.exe") && named(wsl, "wsl.exe") && d.eq_ignore_ascii_case(distro))
            .then(|| Entry {
                distro: distro.to_string(),
                keep_alive,
            })
    }
}

/// A command line's words, split at spaces outside double quotes (which are dropped);
/// `None` when a quote is not closed.
fn words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut in_quotes = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !in_quotes => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    (!in_quotes).then(|| {
        words.extend(word);
        words
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_runs_launch_without_a_window() {
        assert_eq!(value_name("Debian"), "distrod-Debian");
        assert_eq!(
            command_line("C:\\Windows\\System32", "Debian", true),
            "C:\\Windows\\System32\\conhost.exe --headless C:\\Windows\\System32\\wsl.exe \
             -d Debian -u root -e /opt/distrod/bin/distrod launch --keep-alive"
        );
        assert_eq!(
            command_line("D:\\My Windows\\System32", "Debian", false),
            "\"D:\\My Windows\\System32\\conhost.exe\" --headless \
             \"D:\\My Windows\\System32\\wsl.exe\" -d Debian -u root -e \
             /opt/distrod/bin/distrod launch"
        );
        assert!(check_distro("Ubuntu-24.04").is_ok());
        assert!(check_distro("").is_err());
        assert!(check_distro("a b").is_err());
        assert_eq!(
            check_distro("a\"b").unwrap_err(),
            "the distro name \"a\\\"b\" cannot be used in a logon entry"
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_entry_runs_the_installed_distrod() {
        assert_eq!(DISTROD_IN_DISTRO, crate::runtime::INSTALLED_BINARY);
    }

    /// What `reg.exe` writes from inside a distro (System32 as its drive mount gives it) and
    /// what the registry API writes on Windows (System32 from `%SystemRoot%`) are entries
    /// both sides read back as the same.
    #[test]
    fn each_side_recognises_the_others_entry() {
        let from_linux = command_line("C:\\WINDOWS\\system32", "Work", true);
        let from_windows = command_line("C:\\Windows\\System32", "Work", true);
        for data in [&from_linux, &from_windows] {
            assert_eq!(
                Entry::parse("distrod-Work", data),
                Some(Entry {
                    distro: "Work".into(),
                    keep_alive: true
                })
            );
        }
        let quoted = command_line("D:\\My Windows\\System32", "Work", false);
        assert_eq!(
            Entry::parse("distrod-Work", &quoted),
            Some(Entry {
                distro: "Work".into(),
                keep_alive: false
            })
        );
        // Another distro's entry, another program, or a cut line: not an entry of this one.
        assert_eq!(Entry::parse("distrod-Other", &from_linux), None);
        assert_eq!(Entry::parse("Work", &from_linux), None);
        assert_eq!(
            Entry::parse("distrod-Work", "C:\\x\\other.exe --headless"),
            None
        );
        assert_eq!(
            Entry::parse("distrod-Work", "\"C:\\x\\conhost.exe --headless"),
            None
        );
        assert_eq!(
            Entry::parse(
                "distrod-Work",
                "\"C:\\Users\\a\\AppData\\Local\\Distrod\\distrod.exe\" --quiet start --name \
                 \"Work\""
            ),
            None
        );
    }
}
