//! The command line: clap types only. Validation that needs no I/O happens here (value
//! parsers); resolving it into a configuration is each command's job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::image::catalog::ImageSpec;

/// The image server unless `--server` or `DISTROD_IMAGE_SERVER` names another:
/// linuxcontainers.org's simplestreams server.
pub const DEFAULT_SERVER: &str = "https://images.linuxcontainers.org/";

/// distrod's command line: the global flags and the command.
#[derive(Debug, Parser)]
#[command(
    name = "distrod",
    version = crate::version::text(),
    about = "A real systemd for any Linux distribution on WSL2",
    long_about = LONG_ABOUT
)]
pub struct Cli {
    /// Print only warnings and errors: no progress bars or status lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More detail on stderr (-v: debug, -vv: trace). `DISTROD_LOG` takes a tracing filter.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Without a command, distrod.exe runs the installer wizard; distrod on Linux shows
    /// this help.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[cfg(not(windows))]
const LONG_ABOUT: &str = "distrod gives any Linux distribution a real systemd on WSL2.\n\n\
    On Linux it fetches root filesystems from the linuxcontainers.org image server \
    (`distrod images`, `distrod create`) and runs a distro's systemd in a container \
    that every WSL session enters.";

#[cfg(windows)]
const LONG_ABOUT: &str = "distrod gives any Linux distribution a real systemd on WSL2.\n\n\
    distrod.exe installs one: run without arguments (or double-clicked) it asks which image, \
    the name, the user and the password, then downloads the image from the \
    linuxcontainers.org image server, adds distrod to it and registers it with WSL. \
    `distrod.exe install` does the same from flags.";

/// distrod's commands. Which exist depends on the system: distrod.exe on Windows installs
/// and manages distros, distrod in a distro runs its systemd.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the root filesystem images the image server offers.
    Images(ImagesArgs),
    /// Download, verify and unpack an image into a new directory.
    #[cfg(unix)]
    Create(CreateArgs),
    /// Install a distro with distrod in it and register it with WSL (the wizard's work,
    /// from flags).
    #[cfg(windows)]
    #[command(name = "install")]
    InstallDistro(DistroInstallArgs),
    /// The distros registered with WSL.
    #[cfg(windows)]
    List(ListArgs),
    /// Remove a distro from WSL, its disk and its logon entry.
    #[cfg(windows)]
    #[command(name = "uninstall")]
    UninstallDistro(DistroUninstallArgs),
    /// Start a distro and its systemd in the background (no console, no admin rights).
    #[cfg(windows)]
    Start(StartArgs),
    /// Start a distro at logon, for this Windows user, without admin rights.
    #[cfg(windows)]
    Autostart(AutostartArgs),
    /// Write a .wsl package: an image with distrod added, set up on first start.
    Pack(PackArgs),
    /// Reach TCP ports of this distro from other machines (a relay on Windows).
    #[cfg_attr(windows, command(hide = true))]
    Portproxy(PortproxyArgs),
    /// Start the distro's systemd in a container (root; once: a running one is kept).
    #[cfg(target_os = "linux")]
    Launch(LaunchArgs),
    /// Run a command in the container, launching it first if needed (root).
    #[cfg(target_os = "linux")]
    Exec(ExecArgs),
    /// Power the container's systemd off and clean up after it (root).
    #[cfg(target_os = "linux")]
    Stop(StopArgs),
    /// Whether the container runs, and how systemd is doing (exit 3: not running).
    #[cfg(target_os = "linux")]
    Status(StatusArgs),
    /// Make every WSL session of this distro enter the systemd container (root).
    #[cfg(target_os = "linux")]
    Enable(EnableArgs),
    /// Undo `enable`: restore the login shells, stop the container (root).
    #[cfg(target_os = "linux")]
    Disable(DisableArgs),
    /// Copy this binary to /opt/distrod and put `distrod` on root's PATH (root).
    #[cfg(target_os = "linux")]
    Install(InstallArgs),
    /// Replace the installed binary with a newer one, while the container runs (root).
    #[cfg(target_os = "linux")]
    Update(UpdateArgs),
    /// Disable, then remove everything `install` put into the distro (root).
    #[cfg(target_os = "linux")]
    Uninstall(UninstallArgs),
    /// Create the user WSL logs in as (password, sudo rights), then enable (root; the
    /// first-boot step of the Windows installer and of `.wsl` packages).
    #[cfg(target_os = "linux")]
    Firstboot(FirstbootArgs),
}

/// The arguments of `distrod launch`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Root directory of the distro to boot. Default: the running distro itself (/).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Return once systemd is started, without waiting for it to be ready.
    #[arg(long)]
    pub no_wait: bool,

    /// Seconds to wait for systemd to report ready.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,

    /// DNS servers for the container's resolv.conf, this time (default: `dns` in
    /// /etc/distrod.toml, else the distro's own resolv.conf).
    #[arg(long, value_name = "IP,IP..", value_delimiter = ',')]
    pub dns: Vec<std::net::IpAddr>,

    /// Then stay until the container stops (a process that keeps WSL from stopping an
    /// idle distro; what the logon entry runs).
    #[arg(long, conflicts_with = "no_wait")]
    pub keep_alive: bool,
}

/// The arguments of `distrod exec`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    distrod exec -- systemctl status              as root\n  \
    distrod exec -u alice -- bash -l              in a logind session of alice")]
pub struct ExecArgs {
    /// Run as this user (name or uid) in a logind session of their own.
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,

    /// Working directory inside the container. Default: the current one if it exists
    /// there, else the user's home.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,

    /// Fail if the container is not running instead of launching it.
    #[arg(long)]
    pub no_launch: bool,

    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// The arguments of `distrod stop`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct StopArgs {
    /// SIGKILL systemd at once instead of asking it to power off.
    #[arg(long)]
    pub force: bool,

    /// Seconds to wait for the power-off before SIGKILL.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

/// The arguments of `distrod status`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
#[command(
    after_long_help = "Says what a slow or broken boot is about: the boot's state, the \
    jobs systemd still runs or waits on (with how long each unit has been activating), and \
    every failed unit with its result and the last line it logged.\n\n\
    JSON keys (--json):\n  \
    running        true while the container runs\n  \
    pid            its systemd (PID 1), in this distro's pid namespace\n  \
    uptime_secs    seconds since that systemd started\n  \
    state          `systemctl is-system-running`: initializing, starting, running,\n                 \
    degraded, maintenance, stopping...\n  \
    boot_secs      seconds the boot took (start to finish); null while it boots\n  \
    jobs           pending jobs, running ones first, longest first: [{id, unit, type\n                 \
    (start, stop...), state (running or waiting), unit_state (the unit's\n                 \
    ActiveState), age_secs (how long the unit has been activating, or\n                 \
    deactivating for a stop; null when waiting or unknown)}]\n  \
    failed_units   names of the failed units\n  \
    failed         the same units: [{unit, result (exit-code, signal, timeout...),\n                 \
    last_log (the last line its failed run logged; null: none)}]\n  \
    rootfs         the container's root directory\n  \
    previous       how the container before this one ended (when not running: the last\n                 \
    one): powered off cleanly (by what), or killed with the distro; null: no record\n\n\
    Not running: running false, the others null or empty."
)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `distrod enable`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
#[command(
    after_help = "Run from anywhere but /opt/distrod, it installs the binary first \
    (as `distrod install` does).\n\n\
    Examples:\n  \
    sudo ./distrod enable                        install, then hook every login account\n  \
    sudo distrod enable --dns 1.1.1.1,9.9.9.9    and give the container its own resolvers"
)]
pub struct EnableArgs {
    /// DNS servers for the container's resolv.conf instead of WSL's generated resolver
    /// (saved as `dns` in /etc/distrod.toml).
    #[arg(long, value_name = "IP,IP..", value_delimiter = ',')]
    pub dns: Vec<std::net::IpAddr>,

    /// Also ask Windows (through interop, with reg.exe) to start this distro and its
    /// systemd at logon, for this Windows user, without admin rights. `disable` removes it.
    #[arg(long)]
    pub start_on_windows_boot: bool,

    /// Only hook login accounts that appeared or changed shell since (what the container
    /// runs when /etc/passwd changes); no install, no other output.
    #[arg(long, hide = true)]
    pub accounts_only: bool,
}

/// The arguments of `distrod disable`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct DisableArgs {
    /// Restore the shells but leave the container running.
    #[arg(long)]
    pub keep_running: bool,
}

/// `distrod install` takes no arguments.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct InstallArgs {}

/// The arguments of `distrod update`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The new static `distrod` binary.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `distrod uninstall` takes no arguments.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct UninstallArgs {}

/// The arguments of `distrod firstboot`.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
#[command(
    after_help = "Without --user (or without --password-stdin) it asks on the \
    terminal; with no terminal it says which flag is missing.\n\n\
    Examples:\n  \
    sudo distrod firstboot                                   asks for the name and password\n  \
    printf '%s\\n' \"$PW\" | sudo distrod firstboot --user alice --password-stdin"
)]
pub struct FirstbootArgs {
    /// The user to create, or to update if it exists (asked on a terminal when missing).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,

    /// Set up the account only; do not run `enable`.
    #[arg(long)]
    pub no_enable: bool,

    /// Print the user's uid on standard output (for WSL's default-user setting).
    #[arg(long)]
    pub print_uid: bool,

    /// Create the user with exactly this uid (a `.wsl` package's first start: the
    /// `oobe.defaultUid` WSL logs in as). Refused, before anything changes, when another
    /// account has it or the user exists with another uid.
    #[arg(long, value_name = "UID", value_parser = clap::value_parser!(u32).range(1..))]
    pub uid: Option<u32>,
}

/// The arguments of `distrod.exe install`.
#[cfg(windows)]
#[derive(Debug, Args)]
#[command(
    after_help = "Answers not given as flags are asked on the terminal; without a \
    terminal, a missing answer is an error that names its flag.\n\n\
    Examples:\n  \
    distrod.exe install --distro debian --user alice            asks for the password\n  \
    echo %PW% | distrod.exe install --distro ubuntu --name Work --user alice --password-stdin"
)]
pub struct DistroInstallArgs {
    /// The distro to install (e.g. debian, ubuntu, fedora; `distrod.exe images` lists them).
    #[arg(long, value_name = "DISTRO")]
    pub distro: Option<String>,

    /// Its release, by name or number (default: the newest numbered one, for Ubuntu the
    /// newest LTS).
    #[arg(long, value_name = "RELEASE", requires = "distro")]
    pub release: Option<String>,

    /// The image variant (default: `default`).
    #[arg(long, value_name = "VARIANT", requires = "distro")]
    pub variant: Option<String>,

    /// A local file or an http(s) URL of a .tar.xz, .tar.gz, .tar or .wsl root filesystem,
    /// instead of an image from the server.
    #[arg(long, value_name = "FILE|URL", conflicts_with = "distro")]
    pub image: Option<String>,

    /// Expected SHA-256 of the --image file.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256, requires = "image")]
    pub sha256: Option<String>,

    /// The name WSL knows the distro by (`wsl -d NAME`). Default: Distrod.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The directory for the distro's virtual disk (missing or empty).
    /// Default: %LOCALAPPDATA%\Distrod\NAME.
    #[arg(long, value_name = "DIR")]
    pub location: Option<PathBuf>,

    /// The Linux user to create, with sudo rights; `wsl -d NAME` logs in as this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Read the user's password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,

    /// Also start the distro at logon (`distrod.exe autostart enable`).
    #[arg(long, conflicts_with = "without_systemd")]
    pub autostart: bool,

    /// Install the distro as it is, without distrod's systemd: for an image that has no
    /// systemd (Alpine, Void, Devuan, ...), which is otherwise refused before anything is
    /// registered. The user is created; sessions run as in any WSL distro.
    #[arg(long)]
    pub without_systemd: bool,

    /// The image server and architecture, for `--distro`.
    #[command(flatten)]
    pub server: ServerArgs,

    /// The download cache.
    #[command(flatten)]
    pub download: CacheArgs,
}

/// `distrod.exe list` takes no arguments.
#[cfg(windows)]
#[derive(Debug, Args)]
pub struct ListArgs {}

/// The arguments of `distrod.exe uninstall`.
#[cfg(windows)]
#[derive(Debug, Args)]
pub struct DistroUninstallArgs {
    /// The distro to remove.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// Do not ask for confirmation (needed without a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

/// The arguments of `distrod.exe start`.
#[cfg(windows)]
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The distro to start.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// Keep the distro running (WSL stops idle distros) until it is shut down: this
    /// command then runs until the distro stops.
    #[arg(long)]
    pub keep_alive: bool,
}

/// The arguments of `distrod.exe autostart`.
#[cfg(windows)]
#[derive(Debug, Args)]
pub struct AutostartArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AutostartAction,
}

/// `distrod.exe autostart`'s actions, on the logon entry of one distro.
#[cfg(windows)]
#[derive(Debug, Subcommand)]
pub enum AutostartAction {
    /// Start the distro at logon (a value under HKCU\...\CurrentVersion\Run).
    Enable {
        /// The distro.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Keep it running against WSL's idle shutdown (see `start --keep-alive`).
        #[arg(long)]
        keep_alive: bool,
    },
    /// Stop starting the distro at logon.
    Disable {
        /// The distro.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Whether the distro starts at logon, and how.
    Status {
        /// The distro.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

/// The arguments of `distrod portproxy`.
#[derive(Debug, Args)]
#[cfg_attr(
    target_os = "linux",
    command(
        after_help = "WSL's NAT hides the distro's ports from other machines. With ports \
    listed, distrod.exe (put into the distro by the Windows installer at \
    /opt/distrod/bin/distrod.exe) listens on them on Windows while the container runs and \
    forwards each connection to the distro's current address (the unit \
    distrod-portproxy.service). Windows Firewall asks once whether to allow it.\n\n\
    Examples:\n  \
    sudo distrod portproxy add 80 443      forward two ports\n  \
    sudo distrod portproxy remove 443\n  \
    distrod portproxy list"
    )
)]
pub struct PortproxyArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PortproxyAction,
}

/// `distrod portproxy`'s actions: in the distro, the list of ports and the unit that runs
/// the relay; on Windows, the relay itself (`serve`).
#[derive(Debug, Subcommand)]
pub enum PortproxyAction {
    /// Forward these ports (root; saved in /etc/distrod.toml, applied at once).
    #[cfg(target_os = "linux")]
    Add {
        /// The distro's TCP ports to reach from other machines.
        #[arg(value_name = "PORT", required = true, value_parser = clap::value_parser!(u16).range(1..))]
        ports: Vec<u16>,
    },
    /// Stop forwarding these ports (root).
    #[cfg(target_os = "linux")]
    Remove {
        /// Forwarded ports to stop forwarding.
        #[arg(value_name = "PORT", required = true, value_parser = clap::value_parser!(u16).range(1..))]
        ports: Vec<u16>,
    },
    /// The forwarded ports.
    #[cfg(target_os = "linux")]
    List,
    /// What distrod-portproxy.service runs: distrod.exe's relay, through interop.
    #[cfg(target_os = "linux")]
    #[command(hide = true)]
    Run,
    /// The relay: listen on --bind at each port, forward to --to, until standard input
    /// ends. Prints `listening on ADDR -> ADDR` per port.
    #[command(hide = true)]
    Serve {
        /// Where connections go.
        #[arg(long, value_name = "IP")]
        to: std::net::IpAddr,
        /// PORT or LISTEN=TARGET (LISTEN 0: any free port), comma-separated.
        #[arg(long, value_name = "SPEC,..", value_delimiter = ',', required = true)]
        ports: Vec<crate::portproxy::PortSpec>,
        /// The address to listen on.
        #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
        bind: std::net::IpAddr,
    },
}

/// Which image server to ask, and for which architecture.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Image server (simplestreams) base URL.
    #[arg(long, env = "DISTROD_IMAGE_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,

    /// Architecture, in Debian's naming (amd64, arm64, ...). Default: this machine's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

/// The arguments of `distrod images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The image server to list, and the architecture.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Only this distro (e.g. debian).
    #[arg(long)]
    pub distro: Option<String>,

    /// Only this release, by name or number (e.g. bookworm or 12).
    #[arg(long)]
    pub release: Option<String>,

    /// Only this variant (e.g. default, cloud).
    #[arg(long)]
    pub variant: Option<String>,

    /// Print JSON (an array of objects) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `distrod create`.
#[cfg(unix)]
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    distrod create debian --dir ./debian            newest numbered Debian release\n  \
    distrod create ubuntu:24.04 --dir ./noble       a release by number or name\n  \
    distrod create --image rootfs.tar.xz --dir ./x  a local .tar.xz/.tar.gz/.tar/.wsl")]
pub struct CreateArgs {
    /// The image to unpack.
    #[command(flatten)]
    pub source: ImageArgs,

    /// The directory to create; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// The arguments of `distrod pack`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    distrod pack debian --out Debian.wsl                         from the image server\n  \
    distrod pack --image rootfs.tar.xz --out Mine.wsl --name Mine  from a local tarball\n\n\
    Install it on Windows with `wsl --install --from-file Debian.wsl`; the first start \
    asks for the user name and password (`distrod firstboot`), then every session \
    enters systemd.")]
pub struct PackArgs {
    /// The image to pack.
    #[command(flatten)]
    pub source: ImageArgs,

    /// The .wsl file to write (gzip-compressed tar); it must not exist.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// The distribution's default name when it is installed (default: from the image).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Pack the distro as it is, without distrod's systemd: for an image that has no systemd
    /// (Alpine, Void, Devuan, ...), which is otherwise refused. Its first start creates the
    /// user and does not enable distrod.
    #[arg(long)]
    pub without_systemd: bool,
}

/// Where a root filesystem comes from: an image of the server, or a file or URL.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image: distro[:release[:variant]]. Release defaults to the newest numbered one
    /// (for Ubuntu the newest LTS), variant to `default`.
    #[arg(
        value_name = "IMAGE",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub spec: Option<ImageSpec>,

    /// A local file or an http(s) URL of a .tar.xz, .tar.gz, .tar or .wsl root filesystem,
    /// instead of an image from the server.
    #[arg(long, value_name = "FILE|URL")]
    pub image: Option<String>,

    /// Expected SHA-256 of the --image file (images from the server are always verified
    /// against the server's catalog).
    #[arg(long, value_name = "HEX", value_parser = parse_sha256, requires = "image")]
    pub sha256: Option<String>,

    /// The image server and architecture, for IMAGE.
    #[command(flatten)]
    pub server: ServerArgs,

    /// The download cache.
    #[command(flatten)]
    pub download: CacheArgs,
}

/// The download cache of the commands that fetch images.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Download cache directory (resumes interrupted downloads, keeps verified images).
    #[cfg_attr(
        unix,
        doc = "Default: $DISTROD_CACHE_DIR, /var/cache/distrod for root, else ~/.cache/distrod."
    )]
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,

    /// Do not use a download cache.
    #[arg(long)]
    pub no_cache: bool,
}

fn parse_sha256(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err("a SHA-256 is 64 hexadecimal digits".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sha256_values() {
        assert_eq!(parse_sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn create_needs_an_image() {
        assert!(Cli::try_parse_from(["distrod", "create", "--dir", "x"]).is_err());
        assert!(
            Cli::try_parse_from(["distrod", "create", "debian", "--image", "f", "--dir", "x"])
                .is_err()
        );
        let c = Cli::try_parse_from(["distrod", "create", "debian:12", "--dir", "x"]).unwrap();
        match c.command {
            Some(Command::Create(a)) => {
                assert_eq!(a.source.spec.unwrap().release.as_deref(), Some("12"))
            }
            _ => unreachable!(),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exec_takes_the_rest_as_the_command() {
        let c =
            Cli::try_parse_from(["distrod", "exec", "-u", "bob", "sh", "-c", "exit 7"]).unwrap();
        match c.command {
            Some(Command::Exec(a)) => {
                assert_eq!(a.user.as_deref(), Some("bob"));
                assert_eq!(a.command, ["sh", "-c", "exit 7"]);
            }
            _ => unreachable!(),
        }
        let c = Cli::try_parse_from(["distrod", "exec", "--no-launch", "--", "ls", "-v"]).unwrap();
        match c.command {
            Some(Command::Exec(a)) => assert!(a.no_launch && a.command == ["ls", "-v"]),
            _ => unreachable!(),
        }
        assert!(Cli::try_parse_from(["distrod", "exec"]).is_err());
    }
}
