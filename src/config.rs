//! /etc/distrod.toml: the settings of the container and of the sessions that enter it.
//!
//! A missing file, table or key means the default; anything distrod does not know (a table,
//! a key, a value of the wrong type or out of range) is an error naming the file, the key
//! and the reason on one line, so that a typo is never silently ignored. The documented
//! example is `/opt/distrod/share/distrod.toml.example`; [`render`] writes a complete file.
//!
//! Each key is declared once, in the `settings!` table below: its field of [`Config`], its
//! default, the function that reads and checks its value, and its help text. The parser's
//! known keys, serde's reading of the values and the documented file all come from there.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::Path;

use serde::Deserialize as _;
use serde::de::{self, value::MapAccessDeserializer};

/// The configuration file.
pub const PATH: &str = "/etc/distrod.toml";

/// resolv.conf(5) uses at most this many `nameserver` lines (glibc's MAXNS).
pub const MAX_DNS: usize = 3;
/// `container.boot_timeout`, seconds.
pub const BOOT_TIMEOUT: RangeInclusive<u64> = 1..=600;
/// `container.idle_stop_margin`, seconds.
pub const IDLE_STOP_MARGIN: RangeInclusive<u64> = 0..=60;

/// The unit types a name may end in.
const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".target",
    ".mount",
    ".automount",
    ".timer",
    ".path",
    ".slice",
    ".scope",
    ".device",
    ".swap",
];
/// systemd's UNIT_NAME_MAX.
const UNIT_NAME_MAX: usize = 255;

/// A table of the file and its keys, in the order they are documented.
struct Table {
    name: &'static str,
    keys: &'static [Key],
}

/// One key of a [`Table`]: its name, its help text in the documented file, and its value
/// in a [`Config`] as TOML writes it.
struct Key {
    name: &'static str,
    help: &'static str,
    value: fn(&Config) -> String,
}

/// Declares the settings, each key once: under its `[table]`, the field of [`Config`] (its
/// rustdoc, name and type), its default, the `read` function serde reads and checks its
/// value with, and its help text. Gives [`Config`], its `Default` and [`TABLES`].
macro_rules! settings {
    ($(
        [$table:ident]
        $(
            $(#[doc = $doc:literal])*
            $key:ident: $ty:ty = $default:expr, read by $read:literal,
            $help:literal;
        )+
    )+) => {
        /// The settings of /etc/distrod.toml, each default where the file does not set it.
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $($(
                $(#[doc = $doc])*
                #[serde(deserialize_with = $read)]
                pub $key: $ty,
            )+)+
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($($key: $default,)+)+
                }
            }
        }

        /// The tables and their keys, in the order they are documented (and checked).
        const TABLES: &[Table] = &[$(
            Table {
                name: stringify!($table),
                keys: &[$(
                    Key {
                        name: stringify!($key),
                        help: $help,
                        value: |c: &Config| c.$key.toml(),
                    },
                )+],
            },
        )+];
    };
}

settings! {
    [container]
    /// `[container] dns`: resolvers for the container's resolv.conf; empty keeps WSL's.
    dns: Vec<IpAddr> = Vec::new(), read by "read::dns",
        "DNS servers for the container's /etc/resolv.conf, at most 3 (IPv4 or IPv6).\n\
         Empty: the container keeps the resolv.conf WSL generates.";
    /// `[container] boot_timeout`: seconds a session waits for what it needs of systemd
    /// (the bus and logind, see `runtime::readiness`) before it enters the still-booting
    /// container anyway.
    boot_timeout: u64 = 30, read by "read::boot_timeout",
        "Seconds a new session waits for systemd (1 to 600): for its system bus and\n\
         systemd-logind to answer, not for the whole boot. Past it the session enters\n\
         the still-starting container anyway.";
    /// `[container] mask`: more units to mask while the container runs.
    mask: Vec<String> = Vec::new(), read by "read::units",
        "More systemd units to mask while the container runs, such as \"foo.service\"\n\
         or a template, \"foo@.service\". The distro's own files are not changed.";
    /// `[container] unmask`: units of distrod's built-in mask list to leave alone.
    unmask: Vec<String> = Vec::new(), read by "read::units",
        "Units of distrod's built-in mask list to leave alone. distrod masks the units\n\
         that stall a boot under WSL or fight WSL over what it manages, such as\n\
         systemd-networkd.service (WSL configures the network).";
    /// `[container] stop_when_idle`: power the container off cleanly when the distro's
    /// last WSL session has ended, before WSL's idle stop kills it (`runtime::idle`).
    stop_when_idle: bool = true, read by "read::boolean",
        "Power the container off cleanly (systemd's own poweroff, so services run their\n\
         stop commands) when the distro's last WSL session or `wsl -e` command has ended,\n\
         before WSL's idle stop (instanceIdleTimeout in .wslconfig, 15 s by default) kills\n\
         every process of the distro. A new session boots it again.";
    /// `[container] idle_stop_margin`: seconds before WSL's idle stop by which that
    /// poweroff must be over.
    idle_stop_margin: u64 = 2, read by "read::idle_stop_margin",
        "Seconds before WSL's idle stop by which that poweroff must be over (0 to 60).";

    [session]
    /// `[session] pass_env`: more variables passed from the WSL session into the container.
    pass_env: Vec<String> = Vec::new(), read by "read::env_names",
        "More environment variables to pass from the WSL session into the session in the\n\
         container, by name, besides those distrod always passes.";
    /// `[session] fallback_shell`: run the plain shell outside (with a warning) when the
    /// container cannot start, instead of failing the login.
    fallback_shell: bool = true, read by "read::boolean",
        "When the container cannot start: true runs the shell outside it, with a warning;\n\
         false fails the login.";

    [hook]
    /// `[hook] rehook`: re-hook accounts when /etc/passwd changes while the container runs.
    rehook: bool = true, read by "read::boolean",
        "While the container runs, hook login accounts again whenever /etc/passwd changes\n\
         (a new user, a shell changed with chsh), so their sessions enter the container too.";

    [portproxy]
    /// `[portproxy] ports`: TCP ports of the distro that Windows' network interfaces
    /// forward to it (see `distrod portproxy`).
    ports: Vec<u16> = Vec::new(), read by "read::ports",
        "TCP ports of this distro to reach from other machines: while the container\n\
         runs, distrod.exe listens on them on Windows and forwards each connection to\n\
         the distro's current address (`distrod portproxy add|remove|list`).";
    /// `[portproxy] listen`: the Windows address the port proxy listens on.
    listen: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED), read by "read::address",
        "The Windows address to listen on: 0.0.0.0 is every interface.";
}

/// A configuration that cannot be used, as one line: `FILE: KEY: REASON`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ConfigError {
    /// The file that was read.
    pub file: String,
    /// `KEY: REASON`, or why the file cannot be read or parsed.
    pub problem: String,
}

/// Reads [`PATH`]; a missing file means the defaults.
pub fn load() -> Result<Config, ConfigError> {
    load_from(Path::new(PATH))
}

/// Reads `path`; a missing file means the defaults, any other failure to read is an error.
pub fn load_from(path: &Path) -> Result<Config, ConfigError> {
    match read(path)? {
        Some(text) => parse(&text).map_err(|e| ConfigError {
            file: path.display().to_string(),
            ..e
        }),
        None => Ok(Config::default()),
    }
}

/// Parses the text of [`PATH`].
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_text(text).map_err(|problem| ConfigError {
        file: PATH.into(),
        problem,
    })
}

/// The file's text, or `None` when it does not exist.
fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    let fail = |problem: String| ConfigError {
        file: path.display().to_string(),
        problem,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| fail("is not UTF-8 text, as TOML must be".into()))
}

/// The names of `items`, as a message lists them.
fn names<T>(items: &[T], name: fn(&T) -> &'static str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

fn parse_text(text: &str) -> Result<Config, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        }
    })?;

    // Every table and key must be known before any value is read.
    for (name, value) in &doc {
        let Some(known) = TABLES.iter().find(|t| t.name == name) else {
            let name = key_name(name);
            return Err(format!(
                "unknown key {name} (known: {})",
                names(TABLES, |t| t.name)
            ));
        };
        let table = value
            .as_table()
            .ok_or_else(|| format!("{name}: expected a table, found {}", an(value)))?;
        if let Some(key) = table
            .keys()
            .find(|k| !known.keys.iter().any(|known| known.name == k.as_str()))
        {
            return Err(format!(
                "unknown key {name}.{} (known: {})",
                key_name(key),
                names(known.keys, |k| k.name)
            ));
        }
    }
    let set = TABLES.iter().flat_map(|table| {
        let doc = &doc;
        table.keys.iter().filter_map(move |key| {
            let value = doc.get(table.name)?.get(key.name)?;
            Some((table.name, key.name, value))
        })
    });
    Config::deserialize(MapAccessDeserializer::new(Values {
        doc: &doc,
        set,
        current: None,
    }))
    .map_err(|e| e.message().to_owned())
}

/// Checks that span keys: `(table, key, check)`, run on the file once the values up to
/// that key have been read and found good, before the keys documented after it are read.
type Between = (
    &'static str,
    &'static str,
    fn(&toml::Table) -> Result<(), String>,
);
const BETWEEN: [Between; 1] = [("container", "unmask", unmask_not_masked)];

/// `container.unmask` (read: an array of unit names) names none of `container.mask`.
fn unmask_not_masked(doc: &toml::Table) -> Result<(), String> {
    let units = |key: &str| -> Vec<&str> {
        let container = doc.get("container");
        let items = container.and_then(|t| t.get(key)?.as_array());
        items.map_or(Vec::new(), |a| {
            a.iter().filter_map(toml::Value::as_str).collect()
        })
    };
    let mask = units("mask");
    match units("unmask")
        .into_iter()
        .enumerate()
        .find(|(_, u)| mask.contains(u))
    {
        Some((i, u)) => Err(format!(
            "container.unmask[{i}]: {u:?} is in container.mask too"
        )),
        None => Ok(()),
    }
}

/// The values the file sets, as serde's map of [`Config`]'s fields: in the order of
/// [`TABLES`] (the first bad value reported is the first one documented), each value's
/// error, `: REASON` or `[INDEX]: REASON` from its `read` function, after its `table.key`.
struct Values<'a, I: Iterator<Item = (&'static str, &'static str, &'a toml::Value)>> {
    doc: &'a toml::Table,
    set: I,
    current: Option<(&'static str, &'static str, &'a toml::Value)>,
}

impl<'de, 'a, I> de::MapAccess<'de> for Values<'a, I>
where
    I: Iterator<Item = (&'static str, &'static str, &'a toml::Value)>,
{
    type Error = toml::de::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        // The key before this one has been read.
        if let Some((table, key, _)) = self.current {
            for (_, _, check) in BETWEEN.iter().filter(|b| (b.0, b.1) == (table, key)) {
                check(self.doc).map_err(de::Error::custom)?;
            }
        }
        self.current = self.set.next();
        match self.current {
            Some((_, key, _)) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (table, key, value) = self.current.expect("serde asks for a key's value after it");
        seed.deserialize(value.clone())
            .map_err(|e| de::Error::custom(format!("{table}.{key}{}", e.message())))
    }
}

/// The `read` functions of the settings (serde's `deserialize_with`): each takes the value
/// as TOML, checks it, and on error says what is wrong as the rest of the line after the
/// key: `: REASON`, or `[INDEX]: REASON` for an item of an array.
mod read {
    use std::net::IpAddr;
    use std::ops::RangeInclusive;

    use serde::{Deserialize, Deserializer, de};

    use super::{BOOT_TIMEOUT, IDLE_STOP_MARGIN, MAX_DNS, an, is_env_name, unit_name_problem};

    /// `check` on the value as TOML.
    fn checked<'de, D: Deserializer<'de>, T>(
        d: D,
        check: impl FnOnce(&toml::Value) -> Result<T, String>,
    ) -> Result<T, D::Error> {
        let v = toml::Value::deserialize(d)?;
        check(&v).map_err(de::Error::custom)
    }

    pub fn dns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        checked(d, |v| {
            let items = strings(v)?;
            if items.len() > MAX_DNS {
                return Err(format!(
                    ": {} servers, but resolv.conf uses at most {MAX_DNS}",
                    items.len()
                ));
            }
            let mut ips = Vec::new();
            for (i, s) in items.iter().enumerate() {
                let ip = s
                    .parse()
                    .map_err(|_| format!("[{i}]: {s:?} is not an IP address"))?;
                push_new(&mut ips, i, ip)?;
            }
            Ok(ips)
        })
    }

    pub fn boot_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        checked(d, |v| integer_in(v, &BOOT_TIMEOUT))
    }

    pub fn idle_stop_margin<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        checked(d, |v| integer_in(v, &IDLE_STOP_MARGIN))
    }

    /// systemd unit names.
    pub fn units<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        checked(d, |v| {
            let mut units = Vec::new();
            for (i, s) in strings(v)?.into_iter().enumerate() {
                if let Some(why) = unit_name_problem(s) {
                    return Err(format!("[{i}]: {s:?} {why}"));
                }
                units.push(s.to_owned());
            }
            Ok(units)
        })
    }

    pub fn env_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        checked(d, |v| {
            let mut names = Vec::new();
            for (i, s) in strings(v)?.into_iter().enumerate() {
                if !is_env_name(s) {
                    return Err(format!(
                        "[{i}]: {s:?} is not an environment variable name \
                         (letters, digits and _, not starting with a digit)"
                    ));
                }
                names.push(s.to_owned());
            }
            Ok(names)
        })
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        checked(d, |v| {
            v.as_bool()
                .ok_or_else(|| format!(": expected true or false, found {}", an(v)))
        })
    }

    /// TCP ports, each once.
    pub fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        checked(d, |v| {
            let items = v
                .as_array()
                .ok_or_else(|| format!(": expected an array of port numbers, found {}", an(v)))?;
            let mut ports = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let n = item
                    .as_integer()
                    .ok_or_else(|| format!("[{i}]: expected a port number, found {}", an(item)))?;
                let port = u16::try_from(n)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("[{i}]: {n} is not a TCP port (1 to 65535)"))?;
                push_new(&mut ports, i, port)?;
            }
            Ok(ports)
        })
    }

    pub fn address<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        checked(d, |v| {
            let s = v
                .as_str()
                .ok_or_else(|| format!(": expected a string, found {}", an(v)))?;
            s.parse()
                .map_err(|_| format!(": {s:?} is not an IP address"))
        })
    }

    /// Appends item `i` of an array, which must not be there already.
    fn push_new<T: PartialEq + std::fmt::Display>(
        items: &mut Vec<T>,
        i: usize,
        item: T,
    ) -> Result<(), String> {
        if items.contains(&item) {
            return Err(format!("[{i}]: {item} is listed twice"));
        }
        items.push(item);
        Ok(())
    }

    fn strings(v: &toml::Value) -> Result<Vec<&str>, String> {
        let items = v
            .as_array()
            .ok_or_else(|| format!(": expected an array of strings, found {}", an(v)))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .ok_or_else(|| format!("[{i}]: expected a string, found {}", an(item)))
            })
            .collect()
    }

    /// An integer in `range`.
    fn integer_in(v: &toml::Value, range: &RangeInclusive<u64>) -> Result<u64, String> {
        let n = v
            .as_integer()
            .ok_or_else(|| format!(": expected an integer, found {}", an(v)))?;
        u64::try_from(n)
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!(": {n} is out of range {}..={}", range.start(), range.end()))
    }
}

/// The text of a configuration file with `[portproxy] ports` set to `ports`, everything
/// else (comments, other keys) kept as it was: the `ports` line of the table is replaced,
/// or added under its header, or the table is appended.
pub fn with_ports(text: &str, ports: &[u16]) -> Result<String, ConfigError> {
    let value = format!("ports = {}", ports.toml());
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| l.trim().starts_with('[') && !l.trim().starts_with("[[");
    let table = |l: &str| {
        l.trim()
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let mut out: Vec<String> = Vec::new();
    let mut in_table = false;
    let mut done = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if header(line) {
            if in_table && !done {
                out.push(value.clone());
                done = true;
            }
            in_table = table(line) == "portproxy";
            out.push(line.to_string());
            i += 1;
            continue;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        if in_table && !done && key == "ports" && line.contains('=') {
            // The old value, which may span lines up to its closing bracket.
            let mut depth = 0i32;
            loop {
                let l = lines[i];
                let code = l.split('#').next().unwrap_or("");
                depth += code.matches('[').count() as i32 - code.matches(']').count() as i32;
                i += 1;
                if depth <= 0 || i >= lines.len() {
                    break;
                }
            }
            out.push(value.clone());
            done = true;
            continue;
        }
        out.push(line.to_string());
        i += 1;
    }
    if in_table && !done {
        out.push(value.clone());
        done = true;
    }
    if !done {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push("[portproxy]".into());
        out.push(value);
    }
    let mut text = out.join("\n");
    text.push('\n');
    let parsed = parse(&text)?;
    if parsed.ports != ports {
        return Err(ConfigError {
            file: PATH.into(),
            problem: "cannot set portproxy.ports in it: edit the file by hand".into(),
        });
    }
    Ok(text)
}

/// A key of the file as TOML writes it: bare when it can be, else quoted, so that a key
/// holding a line break (`"a\nb" = 1`) still gives a one-line message.
fn key_name(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        key.to_owned()
    } else {
        quote(key)
    }
}

/// "a string", "an integer", ... for messages.
fn an(v: &toml::Value) -> String {
    let t = v.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// Why `name` is not a unit name systemd accepts (`foo.service`, `foo@.service`,
/// `foo@bar.service`), or `None` when it is one.
fn unit_name_problem(name: &str) -> Option<String> {
    let Some(suffix) = UNIT_SUFFIXES.iter().find(|s| name.ends_with(*s)) else {
        return Some(format!(
            "is not a unit name: it must end in one of {}",
            UNIT_SUFFIXES.join(" ")
        ));
    };
    let stem = &name[..name.len() - suffix.len()];
    let valid_char = |c: char| c.is_ascii_alphanumeric() || ":-_.\\".contains(c);
    let (prefix, instance) = match stem.split_once('@') {
        Some((p, i)) => (p, Some(i)),
        None => (stem, None),
    };
    if name.len() > UNIT_NAME_MAX {
        Some(format!("is longer than {UNIT_NAME_MAX} bytes"))
    } else if prefix.is_empty() {
        Some("is not a unit name: nothing before the suffix or @".into())
    } else if !prefix.chars().all(valid_char) || !instance.unwrap_or("").chars().all(valid_char) {
        Some("is not a unit name: only letters, digits and :-_.\\ (and one @) may be used".into())
    } else {
        None
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const RENDER_HEADER: &str = "\
# /etc/distrod.toml: settings of distrod, which runs this distro's own systemd in a
# container under WSL. Written by distrod enable; edit it freely. A missing table or key
# means its default; a key distrod does not know is an error. Every key is explained in
# /opt/distrod/share/distrod.toml.example.
";

/// A complete, commented /etc/distrod.toml for `c`.
pub fn render(c: &Config) -> String {
    document(c, RENDER_HEADER, false)
}

/// The documented file: each key with what it means and its default, set to `c`'s value
/// (or commented out, for the example).
fn document(c: &Config, header: &str, commented: bool) -> String {
    let d = Config::default();
    let mut out = String::from(header);
    for table in TABLES {
        let _ = write!(out, "\n[{}]\n", table.name);
        for key in table.keys {
            out.push('\n');
            for line in key.help.lines() {
                let _ = writeln!(out, "# {line}");
            }
            // The example shows the default as the commented-out key itself.
            if !commented {
                let _ = writeln!(out, "# Default: {}", (key.value)(&d));
            }
            let prefix = if commented { "# " } else { "" };
            let _ = writeln!(out, "{prefix}{} = {}", key.name, (key.value)(c));
        }
    }
    out
}

/// A value as TOML writes it, in the documented file.
trait Toml {
    fn toml(&self) -> String;
}

macro_rules! toml_as_displayed {
    ($($t:ty),+) => {$(
        impl Toml for $t {
            fn toml(&self) -> String {
                self.to_string()
            }
        }
    )+};
}
toml_as_displayed!(bool, u16, u64);

impl Toml for String {
    fn toml(&self) -> String {
        quote(self)
    }
}

impl Toml for IpAddr {
    fn toml(&self) -> String {
        quote(&self.to_string())
    }
}

/// An array on one line.
impl<T: Toml> Toml for [T] {
    fn toml(&self) -> String {
        let items: Vec<String> = self.iter().map(Toml::toml).collect();
        format!("[{}]", items.join(", "))
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../distrod-rootfs/opt/distrod/share/distrod.toml.example");

    const EXAMPLE_HEADER: &str = "\
# Installed by distrod: an example of /etc/distrod.toml, the settings of distrod, which
# runs this distro's own systemd in a container under WSL.
#
# Every key is shown commented out with its default value; a missing file, table or key
# means the default. To change a setting, copy this file to /etc/distrod.toml and set the
# key there. A table or key distrod does not know is an error, so a typo never goes
# unnoticed. [container] settings take effect the next time the container starts.
";

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let d = Config::default();
        assert_eq!(parse("").unwrap(), d);
        assert_eq!(
            parse("# nothing\n\n[container]\n[session]\n[hook]\n").unwrap(),
            d
        );
        assert!(d.dns.is_empty() && d.mask.is_empty() && d.unmask.is_empty());
        assert!(d.pass_env.is_empty());
        assert_eq!(d.boot_timeout, 30);
        assert!(d.fallback_shell && d.rehook);
    }

    #[test]
    fn every_key() {
        let c = parse(
            "[container]\n\
             dns = [\"1.1.1.1\", \"2606:4700:4700::1111\"]\n\
             boot_timeout = 600\n\
             mask = [\"foo.service\", \"getty@.service\", \"serial-getty@ttyS0.service\", \"x-y_z:a\\\\b.mount\"]\n\
             unmask = [\"systemd-networkd.service\"]\n\
             [session]\n\
             pass_env = [\"SSH_AUTH_SOCK\", \"_x1\"]\n\
             fallback_shell = false\n\
             [hook]\n\
             rehook = false\n",
        )
        .unwrap();
        assert_eq!(
            c,
            Config {
                dns: vec![
                    "1.1.1.1".parse().unwrap(),
                    "2606:4700:4700::1111".parse().unwrap()
                ],
                boot_timeout: 600,
                mask: vec![
                    "foo.service".into(),
                    "getty@.service".into(),
                    "serial-getty@ttyS0.service".into(),
                    "x-y_z:a\\b.mount".into()
                ],
                unmask: vec!["systemd-networkd.service".into()],
                pass_env: vec!["SSH_AUTH_SOCK".into(), "_x1".into()],
                fallback_shell: false,
                rehook: false,
                ..Config::default()
            }
        );
        assert_eq!(
            parse("[container]\nboot_timeout = 1\n")
                .unwrap()
                .boot_timeout,
            1
        );
        for suffix in UNIT_SUFFIXES {
            let text = format!("[container]\nmask = [\"a{suffix}\"]\n");
            assert_eq!(parse(&text).unwrap().mask, [format!("a{suffix}")]);
        }
    }

    #[test]
    fn invalid_values() {
        assert_eq!(
            err("[container]\ndns = [\"1.1.1.1\", \"1.1.1\"]\n"),
            "/etc/distrod.toml: container.dns[1]: \"1.1.1\" is not an IP address"
        );
        assert_eq!(
            err("[container]\ndns = [\"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\", \"::1\"]\n"),
            "/etc/distrod.toml: container.dns: 4 servers, but resolv.conf uses at most 3"
        );
        assert_eq!(
            err("[container]\ndns = [\"1.1.1.1\", \"1.1.1.1\"]\n"),
            "/etc/distrod.toml: container.dns[1]: 1.1.1.1 is listed twice"
        );
        assert_eq!(
            err("[container]\nboot_timeout = 0\n"),
            "/etc/distrod.toml: container.boot_timeout: 0 is out of range 1..=600"
        );
        assert_eq!(
            err("[container]\nboot_timeout = 601\n"),
            "/etc/distrod.toml: container.boot_timeout: 601 is out of range 1..=600"
        );
        assert_eq!(
            err("[container]\nboot_timeout = -5\n"),
            "/etc/distrod.toml: container.boot_timeout: -5 is out of range 1..=600"
        );
        for bad in [
            "foo",
            "foo.conf",
            ".service",
            "@x.service",
            "a b.service",
            "../x.service",
            "a/b.service",
            "a@b@c.service",
            "é.service",
        ] {
            let e = err(&format!(
                "[container]\nmask = [\"ok.target\", {}]\n",
                quote(bad)
            ));
            assert!(
                e.starts_with(&format!("/etc/distrod.toml: container.mask[1]: {bad:?} is")),
                "{bad}: {e}"
            );
            let e = err(&format!("[container]\nunmask = [{}]\n", quote(bad)));
            assert!(e.contains("container.unmask[0]: "), "{e}");
        }
        assert!(
            err(&format!(
                "[container]\nmask = [\"{}.service\"]\n",
                "a".repeat(250)
            ))
            .ends_with("is longer than 255 bytes")
        );
        assert_eq!(
            err("[container]\nmask = [\"a.service\"]\nunmask = [\"a.service\"]\n"),
            "/etc/distrod.toml: container.unmask[0]: \"a.service\" is in container.mask too"
        );
        for bad in ["1FOO", "", "A-B", "A B", "É"] {
            let e = err(&format!("[session]\npass_env = [\"X\", {}]\n", quote(bad)));
            assert_eq!(
                e,
                format!(
                    "/etc/distrod.toml: session.pass_env[1]: {bad:?} is not an environment \
                     variable name (letters, digits and _, not starting with a digit)"
                )
            );
        }
    }

    #[test]
    fn wrong_types() {
        for (text, message) in [
            (
                "[container]\ndns = \"1.1.1.1\"\n",
                "container.dns: expected an array of strings, found a string",
            ),
            (
                "[container]\ndns = [1]\n",
                "container.dns[0]: expected a string, found an integer",
            ),
            (
                "[container]\nboot_timeout = \"30\"\n",
                "container.boot_timeout: expected an integer, found a string",
            ),
            (
                "[container]\nboot_timeout = 2.5\n",
                "container.boot_timeout: expected an integer, found a float",
            ),
            (
                "[container]\nmask = [[\"a.service\"]]\n",
                "container.mask[0]: expected a string, found an array",
            ),
            (
                "[session]\nfallback_shell = \"yes\"\n",
                "session.fallback_shell: expected true or false, found a string",
            ),
            (
                "[hook]\nrehook = 1\n",
                "hook.rehook: expected true or false, found an integer",
            ),
            (
                "container = 1\n",
                "container: expected a table, found an integer",
            ),
        ] {
            assert_eq!(err(text), format!("/etc/distrod.toml: {message}"), "{text}");
        }
    }

    #[test]
    fn unknown_keys_with_line_breaks_stay_on_one_line() {
        assert_eq!(
            err("\"a\\nb\" = 1\n"),
            "/etc/distrod.toml: unknown key \"a\\nb\" (known: container, session, hook, portproxy)"
        );
        assert_eq!(
            err("[container]\n\"x\\ny\" = 1\n"),
            "/etc/distrod.toml: unknown key container.\"x\\ny\" (known: dns, boot_timeout, mask, unmask, stop_when_idle, idle_stop_margin)"
        );
        assert_eq!(
            err("[container]\n\"\" = 1\n"),
            "/etc/distrod.toml: unknown key container.\"\" (known: dns, boot_timeout, mask, unmask, stop_when_idle, idle_stop_margin)"
        );
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            err("[container]\ndnss = []\n"),
            "/etc/distrod.toml: unknown key container.dnss (known: dns, boot_timeout, mask, unmask, stop_when_idle, idle_stop_margin)"
        );
        assert_eq!(
            err("[session]\nfallback = true\n"),
            "/etc/distrod.toml: unknown key session.fallback (known: pass_env, fallback_shell)"
        );
        assert_eq!(
            err("[network]\ndns = []\n"),
            "/etc/distrod.toml: unknown key network (known: container, session, hook, portproxy)"
        );
        assert_eq!(
            err("dns = []\n"),
            "/etc/distrod.toml: unknown key dns (known: container, session, hook, portproxy)"
        );
        assert_eq!(
            err("[container.sub]\n"),
            "/etc/distrod.toml: unknown key container.sub (known: dns, boot_timeout, mask, unmask, stop_when_idle, idle_stop_margin)"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line) in [
            ("[container]\nboot_timeout = \n", "line 2"),
            ("[container]\n\n\ndns = [\"1.1.1.1\"\n", "line 4"),
            (
                "[container]\nboot_timeout = 5\nboot_timeout = 6\n",
                "line 3",
            ),
            ("[container\n", "line 1"),
        ] {
            let e = err(text);
            assert!(
                e.starts_with(&format!("/etc/distrod.toml: {line}, column ")),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("distrod.toml");
        assert_eq!(load_from(&missing).unwrap(), Config::default());

        std::fs::write(&missing, "[hook]\nrehook = false\n").unwrap();
        assert!(!load_from(&missing).unwrap().rehook);

        std::fs::write(&missing, "[hook]\nrehook = 2\n").unwrap();
        let e = load_from(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: hook.rehook: expected true or false, found an integer",
                missing.display()
            )
        );

        std::fs::write(&missing, b"# \xff\n").unwrap();
        assert!(
            load_from(&missing)
                .unwrap_err()
                .to_string()
                .ends_with("is not UTF-8 text, as TOML must be")
        );

        // A directory is not readable as a file: an error, not the defaults.
        let e = load_from(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read it: ", dir.path().display())),
            "{e}"
        );
    }

    #[test]
    fn render_round_trips() {
        let custom = Config {
            dns: vec!["9.9.9.9".parse().unwrap(), "::1".parse().unwrap()],
            boot_timeout: 90,
            mask: vec!["a@.service".into(), "b.timer".into()],
            unmask: vec!["systemd-resolved.service".into()],
            stop_when_idle: false,
            idle_stop_margin: 7,
            pass_env: vec!["SSH_AUTH_SOCK".into()],
            fallback_shell: false,
            rehook: false,
            ports: vec![22, 8080],
            listen: "::".parse().unwrap(),
        };
        for c in [Config::default(), custom] {
            let text = render(&c);
            assert_eq!(parse(&text).unwrap(), c, "{text}");
            assert!(text.starts_with(RENDER_HEADER));
        }
        // Strings that need escaping survive too (as TOML; validation is parse's job).
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        let t: toml::Table = format!("k = {}", quote("a\"b\\c\u{1}\n")).parse().unwrap();
        assert_eq!(t["k"].as_str(), Some("a\"b\\c\u{1}\n"));
    }

    #[test]
    fn the_example_documents_the_defaults() {
        assert_eq!(parse(EXAMPLE).unwrap(), Config::default());
        assert_eq!(EXAMPLE, document(&Config::default(), EXAMPLE_HEADER, true));
        for table in TABLES {
            assert!(EXAMPLE.contains(&format!("\n[{}]\n", table.name)));
            for key in table.keys {
                let key = key.name;
                assert!(EXAMPLE.contains(&format!("\n# {key} = ")), "{key}");
            }
        }
    }

    #[test]
    fn portproxy_ports_and_listen() {
        let c = parse("[portproxy]\nports = [80, 8443]\nlisten = \"192.168.1.5\"\n").unwrap();
        assert_eq!(c.ports, [80, 8443]);
        assert_eq!(c.listen.to_string(), "192.168.1.5");
        for (text, needle) in [
            (
                "[portproxy]\nports = [0]\n",
                "portproxy.ports[0]: 0 is not a TCP port",
            ),
            ("[portproxy]\nports = [70000]\n", "70000 is not a TCP port"),
            ("[portproxy]\nports = [22, 22]\n", "22 is listed twice"),
            ("[portproxy]\nports = [\"80\"]\n", "expected a port number"),
            (
                "[portproxy]\nlisten = \"any\"\n",
                "portproxy.listen: \"any\" is not an IP",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} (wanted {needle})");
        }
    }

    #[test]
    fn setting_ports_keeps_the_rest_of_the_file() {
        // No table yet: appended.
        let text = "# mine\n[container]\ndns = [\"1.1.1.1\"]\n";
        let out = with_ports(text, &[80]).unwrap();
        assert_eq!(
            out,
            "# mine\n[container]\ndns = [\"1.1.1.1\"]\n\n[portproxy]\nports = [80]\n"
        );
        // A table with a ports line (over two lines) and a comment: the line replaced.
        let text = "[portproxy]\n# web\nports = [80,\n  443]\nlisten = \"0.0.0.0\"\n[hook]\nrehook = true\n";
        let out = with_ports(text, &[80, 443, 22]).unwrap();
        assert_eq!(
            out,
            "[portproxy]\n# web\nports = [80, 443, 22]\nlisten = \"0.0.0.0\"\n[hook]\nrehook = true\n"
        );
        // A table without the key: added at its end, before the next table.
        let out = with_ports("[portproxy]\nlisten = \"::\"\n[hook]\n", &[]).unwrap();
        assert_eq!(out, "[portproxy]\nlisten = \"::\"\nports = []\n[hook]\n");
        assert_eq!(parse(&out).unwrap().ports, Vec::<u16>::new());
        // An empty file.
        assert_eq!(
            with_ports("", &[8080]).unwrap(),
            "[portproxy]\nports = [8080]\n"
        );
        // A broken file stays the user's to fix.
        assert!(with_ports("[container\n", &[80]).is_err());
    }
}
