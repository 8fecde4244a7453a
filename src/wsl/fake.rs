//! [`Recording`]: a [`Wsl`] that records every call in order and answers as a test
//! programs it, so the installer's flow is tested on Linux.
//!
//! It keeps a small model of WSL: a set of registered distros (import adds, unregister
//! removes, names compare case-insensitively), whether each runs (run and launch_detached
//! start it, terminate stops it) and its default uid. Calls on a distro that is not
//! registered fail as WSL does; `fail_on` makes every call of a kind fail; `push_output`
//! queues what `run` returns.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{Distribution, Output, Result, Run, State, Wsl, WslError};

/// One call, with its arguments.
// Each variant is the method of `Wsl` of that name, its fields the method's arguments,
// all documented there.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    IsRegistered {
        name: String,
    },
    List,
    Import {
        name: String,
        location: PathBuf,
        tarball: PathBuf,
    },
    Unregister {
        name: String,
    },
    SetDefaultUser {
        name: String,
        uid: u32,
    },
    Run {
        name: String,
        user: Option<String>,
        command: Vec<String>,
        stdin: Option<Vec<u8>>,
    },
    LaunchDetached {
        name: String,
        command: String,
    },
    Terminate {
        name: String,
    },
}

/// Which method a [`Call`] was.
// The variants are named after the methods of `Wsl`, documented there.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    IsRegistered,
    List,
    Import,
    Unregister,
    SetDefaultUser,
    Run,
    LaunchDetached,
    Terminate,
}

impl Call {
    /// The method this call was, without its arguments.
    pub fn kind(&self) -> CallKind {
        match self {
            Call::IsRegistered { .. } => CallKind::IsRegistered,
            Call::List => CallKind::List,
            Call::Import { .. } => CallKind::Import,
            Call::Unregister { .. } => CallKind::Unregister,
            Call::SetDefaultUser { .. } => CallKind::SetDefaultUser,
            Call::Run { .. } => CallKind::Run,
            Call::LaunchDetached { .. } => CallKind::LaunchDetached,
            Call::Terminate { .. } => CallKind::Terminate,
        }
    }
}

struct FakeDistro {
    name: String,
    running: bool,
    default_uid: u32,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    distros: Vec<FakeDistro>,
    failing: HashSet<CallKind>,
    outputs: VecDeque<Output>,
}

impl Inner {
    fn find(&mut self, name: &str) -> Option<&mut FakeDistro> {
        self.distros
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }
}

/// The recording fake. Interior mutability, so it is used through `&dyn Wsl` like the
/// real one.
#[derive(Default)]
pub struct Recording {
    inner: Mutex<Inner>,
}

/// What wsl.exe says for a distro it does not know.
const NOT_FOUND: &str = "There is no distribution with the supplied name.";
/// HRESULT_FROM_WIN32(ERROR_NOT_FOUND), what the API answers for it.
const HR_NOT_FOUND: i32 = 0x8007_0490_u32 as i32;

impl Recording {
    /// A fake on which no distro is registered.
    pub fn new() -> Recording {
        Recording::default()
    }

    /// A fake on which these distros are already registered (stopped, default uid 0).
    pub fn with_registered(names: &[&str]) -> Recording {
        let fake = Recording::new();
        for name in names {
            fake.lock().distros.push(FakeDistro {
                name: name.to_string(),
                running: false,
                default_uid: 0,
            });
        }
        fake
    }

    /// Every later call of this kind fails (after being recorded), as WSL would report it.
    pub fn fail_on(&self, kind: CallKind) {
        self.lock().failing.insert(kind);
    }

    /// Calls of this kind succeed again.
    pub fn succeed_on(&self, kind: CallKind) {
        self.lock().failing.remove(&kind);
    }

    /// The next `run` returns this (in order); with none queued, `run` returns status 0
    /// and no output.
    pub fn push_output(&self, output: Output) {
        self.lock().outputs.push_back(output);
    }

    /// Every call so far, in order, failed ones included.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The kind of every call so far, in order: for tests that check the sequence only.
    pub fn kinds(&self) -> Vec<CallKind> {
        self.lock().calls.iter().map(Call::kind).collect()
    }

    /// The registered names, in registration order.
    pub fn registered(&self) -> Vec<String> {
        self.lock().distros.iter().map(|d| d.name.clone()).collect()
    }

    /// The uid `set_default_user` gave the distro (0 until then); None when it is not
    /// registered.
    pub fn default_uid(&self, name: &str) -> Option<u32> {
        self.lock().find(name).map(|d| d.default_uid)
    }

    /// Whether the distro runs in the model (false when it is not registered).
    pub fn is_running(&self, name: &str) -> bool {
        self.lock().find(name).is_some_and(|d| d.running)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock has failed already; keep the state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the call, then fails it if the test asked so.
    fn record(&self, call: Call) -> Result<MutexGuard<'_, Inner>> {
        let mut inner = self.lock();
        let kind = call.kind();
        let failure = inner.failing.contains(&kind).then(|| programmed(&call));
        inner.calls.push(call);
        match failure {
            Some(e) => Err(e),
            None => Ok(inner),
        }
    }
}

fn exe_error(op: String, message: &str) -> WslError {
    WslError::Exit {
        op,
        code: -1,
        message: message.to_string(),
    }
}

fn api_error(function: &'static str, distro: &str, hresult: i32) -> WslError {
    WslError::Api {
        function,
        distro: distro.to_string(),
        hresult,
    }
}

/// The error a programmed failure gives: the kind the real implementation would.
fn programmed(call: &Call) -> WslError {
    const MESSAGE: &str = "failure programmed by the test";
    const E_FAIL: i32 = 0x8000_4005_u32 as i32;
    match call {
        Call::IsRegistered { name } => api_error("WslIsDistributionRegistered", name, E_FAIL),
        Call::List => exe_error("wsl.exe --list --verbose".into(), MESSAGE),
        Call::Import { name, .. } => exe_error(format!("wsl.exe --import {name}"), MESSAGE),
        Call::Unregister { name } => exe_error(format!("wsl.exe --unregister {name}"), MESSAGE),
        Call::SetDefaultUser { name, .. } => api_error("WslConfigureDistribution", name, E_FAIL),
        Call::Run { name, command, .. } => exe_error(
            format!(
                "wsl.exe -d {name} -e {}",
                command.first().map_or("", String::as_str)
            ),
            MESSAGE,
        ),
        Call::LaunchDetached { name, .. } => api_error("WslLaunch", name, E_FAIL),
        Call::Terminate { name } => exe_error(format!("wsl.exe --terminate {name}"), MESSAGE),
    }
}

impl Wsl for Recording {
    fn is_registered(&self, name: &str) -> Result<bool> {
        let mut inner = self.record(Call::IsRegistered { name: name.into() })?;
        Ok(inner.find(name).is_some())
    }

    fn list(&self) -> Result<Vec<Distribution>> {
        let inner = self.record(Call::List)?;
        Ok(inner
            .distros
            .iter()
            .enumerate()
            .map(|(i, d)| Distribution {
                name: d.name.clone(),
                state: if d.running {
                    State::Running
                } else {
                    State::Stopped
                },
                version: 2,
                default: i == 0,
            })
            .collect())
    }

    fn import(&self, name: &str, location: &Path, tarball: &Path) -> Result<()> {
        let mut inner = self.record(Call::Import {
            name: name.into(),
            location: location.into(),
            tarball: tarball.into(),
        })?;
        if inner.find(name).is_some() {
            return Err(exe_error(
                format!("wsl.exe --import {name}"),
                "A distribution with the supplied name already exists.",
            ));
        }
        inner.distros.push(FakeDistro {
            name: name.into(),
            running: false,
            default_uid: 0,
        });
        Ok(())
    }

    fn unregister(&self, name: &str) -> Result<()> {
        let mut inner = self.record(Call::Unregister { name: name.into() })?;
        let before = inner.distros.len();
        inner.distros.retain(|d| !d.name.eq_ignore_ascii_case(name));
        if inner.distros.len() == before {
            return Err(exe_error(format!("wsl.exe --unregister {name}"), NOT_FOUND));
        }
        Ok(())
    }

    fn set_default_user(&self, name: &str, uid: u32) -> Result<()> {
        let mut inner = self.record(Call::SetDefaultUser {
            name: name.into(),
            uid,
        })?;
        match inner.find(name) {
            Some(d) => {
                d.default_uid = uid;
                Ok(())
            }
            None => Err(api_error(
                "WslGetDistributionConfiguration",
                name,
                HR_NOT_FOUND,
            )),
        }
    }

    fn run(&self, run: &Run<'_>) -> Result<Output> {
        let name = run.distro;
        let mut inner = self.record(Call::Run {
            name: name.into(),
            user: run.user.map(str::to_string),
            command: run.command.iter().map(|s| s.to_string()).collect(),
            stdin: run.stdin.map(<[u8]>::to_vec),
        })?;
        match inner.find(name) {
            Some(d) => d.running = true,
            None => {
                let program = run.command.first().copied().unwrap_or("");
                return Err(exe_error(
                    format!("wsl.exe -d {name} -e {program}"),
                    NOT_FOUND,
                ));
            }
        }
        Ok(inner.outputs.pop_front().unwrap_or_default())
    }

    fn launch_detached(&self, name: &str, command: &str) -> Result<()> {
        let mut inner = self.record(Call::LaunchDetached {
            name: name.into(),
            command: command.into(),
        })?;
        match inner.find(name) {
            Some(d) => {
                d.running = true;
                Ok(())
            }
            None => Err(api_error("WslLaunch", name, HR_NOT_FOUND)),
        }
    }

    fn terminate(&self, name: &str) -> Result<()> {
        let mut inner = self.record(Call::Terminate { name: name.into() })?;
        match inner.find(name) {
            Some(d) => {
                d.running = false;
                Ok(())
            }
            None => Err(exe_error(format!("wsl.exe --terminate {name}"), NOT_FOUND)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_every_call_in_order_with_arguments() {
        let fake = Recording::new();
        let wsl: &dyn Wsl = &fake;
        assert!(!wsl.is_registered("Distrod").unwrap());
        wsl.import("Distrod", Path::new("/loc"), Path::new("/r.tar.xz"))
            .unwrap();
        fake.push_output(Output {
            code: 0,
            stdout: b"1000\n".to_vec(),
            stderr: vec![],
        });
        let out = wsl
            .run(&Run::new("Distrod", &["id", "-u", "alice"]).user("root"))
            .unwrap();
        assert_eq!(out.stdout_text(), "1000\n");
        let out = wsl
            .run(
                &Run::new("Distrod", &["chpasswd"])
                    .user("root")
                    .stdin(b"alice:pw\n"),
            )
            .unwrap();
        assert_eq!(out, Output::default());
        wsl.set_default_user("Distrod", 1000).unwrap();
        wsl.terminate("Distrod").unwrap();
        wsl.launch_detached("Distrod", "/opt/distrod/bin/distrod launch")
            .unwrap();
        assert_eq!(
            fake.calls(),
            [
                Call::IsRegistered {
                    name: "Distrod".into()
                },
                Call::Import {
                    name: "Distrod".into(),
                    location: "/loc".into(),
                    tarball: "/r.tar.xz".into()
                },
                Call::Run {
                    name: "Distrod".into(),
                    user: Some("root".into()),
                    command: vec!["id".into(), "-u".into(), "alice".into()],
                    stdin: None
                },
                Call::Run {
                    name: "Distrod".into(),
                    user: Some("root".into()),
                    command: vec!["chpasswd".into()],
                    stdin: Some(b"alice:pw\n".to_vec())
                },
                Call::SetDefaultUser {
                    name: "Distrod".into(),
                    uid: 1000
                },
                Call::Terminate {
                    name: "Distrod".into()
                },
                Call::LaunchDetached {
                    name: "Distrod".into(),
                    command: "/opt/distrod/bin/distrod launch".into()
                },
            ]
        );
        assert_eq!(fake.default_uid("distrod"), Some(1000));
        assert!(fake.is_running("Distrod"));
    }

    #[test]
    fn models_registration_state_and_default() {
        let fake = Recording::with_registered(&["Ubuntu"]);
        assert!(fake.is_registered("ubuntu").unwrap());
        fake.import("Distrod", Path::new("/l"), Path::new("/t"))
            .unwrap();
        let e = fake
            .import("DISTROD", Path::new("/l"), Path::new("/t"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "wsl.exe --import DISTROD failed (exit -1): A distribution with the supplied name already exists."
        );
        fake.launch_detached("Distrod", "true").unwrap();
        let list = fake.list().unwrap();
        assert_eq!(
            list,
            [
                Distribution {
                    name: "Ubuntu".into(),
                    state: State::Stopped,
                    version: 2,
                    default: true
                },
                Distribution {
                    name: "Distrod".into(),
                    state: State::Running,
                    version: 2,
                    default: false
                },
            ]
        );
        fake.unregister("Distrod").unwrap();
        assert_eq!(fake.registered(), ["Ubuntu"]);
        assert!(!fake.is_registered("Distrod").unwrap());
    }

    #[test]
    fn unknown_distros_fail_as_wsl_does() {
        let fake = Recording::new();
        assert_eq!(
            fake.unregister("Nope").unwrap_err().to_string(),
            "wsl.exe --unregister Nope failed (exit -1): There is no distribution with the supplied name."
        );
        assert_eq!(
            fake.run(&Run::new("Nope", &["true"]))
                .unwrap_err()
                .to_string(),
            "wsl.exe -d Nope -e true failed (exit -1): There is no distribution with the supplied name."
        );
        assert!(matches!(
            fake.set_default_user("Nope", 1000).unwrap_err(),
            WslError::Api { .. }
        ));
        assert!(fake.launch_detached("Nope", "true").is_err());
        assert!(fake.terminate("Nope").is_err());
        assert_eq!(fake.kinds().len(), 5);
    }

    #[test]
    fn programmed_failures_are_recorded_and_can_be_lifted() {
        let fake = Recording::with_registered(&["Distrod"]);
        fake.fail_on(CallKind::SetDefaultUser);
        fake.fail_on(CallKind::Import);
        let e = fake.set_default_user("Distrod", 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "WslConfigureDistribution for Distrod failed: 0x80004005"
        );
        assert_eq!(fake.default_uid("Distrod"), Some(0));
        let e = fake
            .import("Other", Path::new("/l"), Path::new("/t"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "wsl.exe --import Other failed (exit -1): failure programmed by the test"
        );
        // A failed import registers nothing.
        assert_eq!(fake.registered(), ["Distrod"]);
        fake.succeed_on(CallKind::SetDefaultUser);
        fake.set_default_user("Distrod", 1000).unwrap();
        assert_eq!(fake.default_uid("Distrod"), Some(1000));
        assert_eq!(
            fake.kinds(),
            [
                CallKind::SetDefaultUser,
                CallKind::Import,
                CallKind::SetDefaultUser
            ]
        );
        fake.fail_on(CallKind::Run);
        assert!(fake.run(&Run::new("Distrod", &["true"])).is_err());
        fake.fail_on(CallKind::List);
        assert!(fake.list().is_err());
        fake.fail_on(CallKind::IsRegistered);
        assert!(fake.is_registered("Distrod").is_err());
    }

    #[test]
    fn queued_outputs_come_back_in_order() {
        let fake = Recording::with_registered(&["Distrod"]);
        for code in [1, 2] {
            fake.push_output(Output {
                code,
                ..Output::default()
            });
        }
        let codes: Vec<i32> = (0..3)
            .map(|_| fake.run(&Run::new("Distrod", &["x"])).unwrap().code)
            .collect();
        assert_eq!(codes, [1, 2, 0]);
    }
}
