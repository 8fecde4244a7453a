//! `distrod portproxy`: reach TCP ports of the distro from other machines.
//!
//! WSL 2's NAT hides the distro's ports from the network; only Windows itself reaches them
//! (through localhost). The port proxy listens on Windows' interfaces and forwards each
//! connection to the distro's current address:
//!
//! - `add`, `remove`, `list` (Linux, root) edit `[portproxy] ports` in /etc/distrod.toml and
//!   restart the proxy when the container runs;
//! - `run` (Linux, hidden) is what the unit `distrod-portproxy.service` runs in the
//!   container: it finds the distro's address and starts `/opt/distrod/bin/distrod.exe
//!   portproxy serve` on the Windows side through interop, with a pipe as its standard
//!   input; when the unit stops, the pipe closes and the Windows side stops too;
//! - `serve` (hidden, both systems) is the relay itself ([`crate::portproxy::relay`]),
//!   which runs until its standard input ends.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::{PortproxyAction, PortproxyArgs};
use crate::portproxy::PortSpec;
use crate::portproxy::relay::{Config as RelayConfig, Relay};
use crate::ui::Ui;

/// `distrod portproxy`: one of its actions.
pub fn run(args: &PortproxyArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    match &args.action {
        #[cfg(target_os = "linux")]
        PortproxyAction::Add { ports } => linux::edit(ports, &[], ui),
        #[cfg(target_os = "linux")]
        PortproxyAction::Remove { ports } => linux::edit(&[], ports, ui),
        #[cfg(target_os = "linux")]
        PortproxyAction::List => linux::list(),
        #[cfg(target_os = "linux")]
        PortproxyAction::Run => linux::run(ui),
        PortproxyAction::Serve { to, ports, bind } => serve(*to, ports, *bind, ui),
    }
}

/// `serve`'s exit status when a port is taken on Windows (by another distro's port proxy,
/// or any other program): the unit does not retry it (`RestartPreventExitStatus=`).
pub const PORT_IN_USE: u8 = 3;

/// The relay until standard input ends (or Ctrl-C). It prints `listening on LISTEN ->
/// TARGET` for each port once all are bound; a port already taken gives one line naming
/// it and exit status [`PORT_IN_USE`].
fn serve(to: IpAddr, ports: &[PortSpec], bind: IpAddr, ui: &Ui) -> anyhow::Result<ExitCode> {
    if ports.is_empty() {
        bail!("no ports to forward: give --ports PORT[,PORT...]");
    }
    let targets: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::new(to, p.target))
        .collect();
    let config = RelayConfig::new(
        ports
            .iter()
            .map(|p| SocketAddr::new(bind, p.listen))
            .collect(),
        targets.clone(),
    );
    let relay = match Relay::start(config) {
        Ok(relay) => relay,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            // The VM's distros share Windows' ports: the other one may be a distro's proxy.
            eprintln!(
                "error: {e}: another program on Windows serves that port (another distro's \
                 port proxy?); remove the port there or here (`distrod portproxy remove \
                 PORT`)"
            );
            return Ok(ExitCode::from(PORT_IN_USE));
        }
        Err(e) => return Err(e.into()),
    };
    {
        let mut out = io::stdout().lock();
        for (l, t) in relay.local_addrs().iter().zip(&targets) {
            writeln!(out, "listening on {l} -> {t}")?;
        }
        out.flush()?;
    }
    // Whoever started this holds the other end of standard input: when it goes (the unit
    // stopped, the container stopped), so does the relay.
    let mut sink = [0u8; 256];
    let mut stdin = io::stdin().lock();
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let stats = relay.stats();
    relay.stop();
    ui.status(format_args!(
        "port proxy stopped after {} connection(s)",
        stats.total
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Write;
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;
    use std::process::{Command, ExitCode, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{Context, bail};

    use crate::config;
    use crate::fsutil::{self, Durability, Replace};
    use crate::image::repack::WINDOWS_EXE;
    use crate::interrupt;
    use crate::runtime::{self, mounts, state};
    use crate::ui::Ui;

    /// `add` and `remove`.
    pub fn edit(add: &[u16], remove: &[u16], ui: &Ui) -> anyhow::Result<ExitCode> {
        runtime::require_root("portproxy")?;
        if add.iter().chain(remove).any(|p| *p == 0) {
            bail!("0 is not a TCP port (1 to 65535)");
        }
        let path = Path::new(config::PATH);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        // The file as it is must be valid: nothing is written over a broken one.
        let current = config::parse(&text)?;
        let mut ports = current.ports.clone();
        for p in add {
            if !ports.contains(p) {
                ports.push(*p);
            }
        }
        ports.retain(|p| !remove.contains(p));
        if ports == current.ports {
            ui.status(format_args!("{}", describe(&ports)));
            return Ok(ExitCode::SUCCESS);
        }
        let new = config::with_ports(&text, &ports)?;
        write_atomically(path, &new)?;
        if state::running().is_some()
            && let Err(e) = restart_unit()
        {
            // Refused: the file as it was, and the proxy as it was (nothing half-made).
            let why = unit_failure().unwrap_or_else(|| format!("{e:#}"));
            write_atomically(path, &text)?;
            if let Err(e) = restart_unit() {
                tracing::debug!("restarting the port proxy as it was: {e:#}");
            }
            bail!(
                "the port proxy cannot serve {}: {why}; {} is unchanged",
                port_list(add.iter().chain(remove), ", "),
                path.display()
            );
        }
        ui.status(format_args!("{}", describe(&ports)));
        if state::running().is_some() {
            ui.status(format_args!("restarted {}", mounts::PORTPROXY_UNIT));
        }
        Ok(ExitCode::SUCCESS)
    }

    fn describe(ports: &[u16]) -> String {
        if ports.is_empty() {
            "no port is forwarded".into()
        } else {
            format!("forwarded from Windows: {}", port_list(ports, ", "))
        }
    }

    /// `ports` as text, `separator` between them.
    fn port_list<'a>(ports: impl IntoIterator<Item = &'a u16>, separator: &str) -> String {
        let ports: Vec<String> = ports.into_iter().map(u16::to_string).collect();
        ports.join(separator)
    }

    /// Replaces the configuration, 0644 whatever the umask, like the rest of /etc. Contents:
    /// after a crash it is the old file or the new one, and either is one to run with.
    fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
        let opts = Replace::new(Durability::Contents).mode(0o644);
        fsutil::replace_file(path, opts, |f| f.write_all(text.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// `ARGV` in the running container (`distrod exec --no-launch`), its output captured.
    fn in_container(argv: &[&str]) -> anyhow::Result<std::process::Output> {
        let me = std::env::current_exe().context("cannot find distrod")?;
        Command::new(me)
            .args(["--quiet", "exec", "--no-launch", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .context("cannot run a command in the container")
    }

    /// `systemctl restart` of the unit inside the running container; it returns once every
    /// port is served (the unit is Type=notify), and fails when one cannot be.
    fn restart_unit() -> anyhow::Result<()> {
        let out = in_container(&["systemctl", "restart", mounts::PORTPROXY_UNIT])?;
        if !out.status.success() {
            bail!(
                "systemctl restart {} failed in the container ({}): {}",
                mounts::PORTPROXY_UNIT,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Why the unit's last start failed: the last line its processes logged (the relay's
    /// own error line, such as a port taken on Windows).
    fn unit_failure() -> Option<String> {
        let script = format!(
            "id=$(systemctl show -p InvocationID --value {0}) && [ -n \"$id\" ] && \
             journalctl --no-pager -q -o cat -n 1 _SYSTEMD_INVOCATION_ID=\"$id\"",
            mounts::PORTPROXY_UNIT
        );
        let out = in_container(&["sh", "-c", &script]).ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last()?.trim();
        (!line.is_empty()).then(|| line.strip_prefix("error: ").unwrap_or(line).to_string())
    }

    pub fn list() -> anyhow::Result<ExitCode> {
        let c = config::load()?;
        if c.ports.is_empty() {
            println!("no port is forwarded (`distrod portproxy add PORT`)");
        } else {
            for p in &c.ports {
                println!("{}:{p}", c.listen);
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// sd_notify(3) READY=1 to `$NOTIFY_SOCKET` (a path, or `@` for an abstract name), if
    /// systemd gave one.
    fn sd_notify_ready() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(Path::new(&path)),
        };
        let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(b"READY=1", &a));
        if let Err(e) = sent {
            tracing::debug!("sd_notify: {e}");
        }
    }

    /// The distro's address other machines' connections go to: the first IPv4 address of
    /// an interface that is up and not loopback (eth0 first: WSL's).
    pub fn distro_address() -> anyhow::Result<Ipv4Addr> {
        use nix::net::if_::InterfaceFlags;
        let mut found: Vec<(String, Ipv4Addr)> = nix::ifaddrs::getifaddrs()
            .context("cannot list the network interfaces")?
            .filter(|i| {
                i.flags.contains(InterfaceFlags::IFF_UP)
                    && !i.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            })
            .filter_map(|i| {
                let ip = i.address?.as_sockaddr_in()?.ip();
                Some((i.interface_name, ip))
            })
            .collect();
        found.sort_by_key(|(name, _)| name != "eth0");
        found
            .first()
            .map(|(_, ip)| *ip)
            .context("the distro has no IPv4 address on any interface but loopback")
    }

    /// What the unit runs: distrod.exe's relay through interop, until the unit stops.
    pub fn run(ui: &Ui) -> anyhow::Result<ExitCode> {
        let c = config::load()?;
        if c.ports.is_empty() {
            ui.status(format_args!(
                "no ports in [portproxy] of {}: nothing to forward",
                config::PATH
            ));
            return Ok(ExitCode::SUCCESS);
        }
        let exe = Path::new("/").join(WINDOWS_EXE);
        if !exe.is_file() {
            bail!(
                "{} is missing: the Windows installer puts distrod.exe there; in a distro \
                 enabled by hand, copy distrod.exe there to use the port proxy",
                exe.display()
            );
        }
        let to = distro_address()?;
        let ports = port_list(&c.ports, ",");
        interrupt::install();
        // Said before distrod.exe starts: on the journal's one stream, a line of its own
        // (a port it cannot take) then always comes after, as the unit's last word.
        ui.status(format_args!(
            "forwarding {}:{{{ports}}} to {to} ({} portproxy serve)",
            c.listen,
            exe.display()
        ));
        let mut child = Command::new(&exe)
            .args(["portproxy", "serve", "--to"])
            .arg(IpAddr::V4(to).to_string())
            .arg("--bind")
            .arg(c.listen.to_string())
            .arg("--ports")
            .arg(&ports)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} (is Windows interop on?)", exe.display()))?;
        let stdin = child.stdin.take();
        // Its `listening on` lines (one per port, once all are bound) go to the journal,
        // and the last one makes the unit ready (Type=notify): `systemctl restart` returns
        // once the ports are served, or fails when one cannot be.
        if let Some(out) = child.stdout.take() {
            let want = c.ports.len();
            std::thread::spawn(move || {
                use std::io::BufRead;
                let mut seen = 0;
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    println!("{line}");
                    if line.starts_with("listening on ") {
                        seen += 1;
                        if seen == want {
                            sd_notify_ready();
                        }
                    }
                }
            });
        }
        loop {
            if let Some(status) = child.try_wait().context("cannot wait for distrod.exe")? {
                if status.success() {
                    return Ok(ExitCode::SUCCESS);
                }
                if status.code() == Some(i32::from(super::PORT_IN_USE)) {
                    // It said which port and why, in the journal's last line.
                    return Ok(ExitCode::from(super::PORT_IN_USE));
                }
                bail!("distrod.exe portproxy serve exited with {status}");
            }
            if interrupt::requested() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Stopping: closing its input is what stops the Windows side.
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(ExitCode::SUCCESS)
    }
}
