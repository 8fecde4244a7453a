//! `distrod portproxy`: forwards TCP connections from Windows' network interfaces to the WSL distro.
//!
//! [`PortSpec`] is what the command line gives the relay (`serve --ports`): it lives here, below
//! both the command line and the commands, so that neither has to import the other.

pub mod relay;

/// `PORT` or `LISTEN=TARGET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// The port to listen on (Windows side); 0: any free one.
    pub listen: u16,
    /// The distro's port connections go to (1 to 65535).
    pub target: u16,
}

impl std::str::FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let port = |p: &str, zero_ok: bool| -> Result<u16, String> {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| zero_ok || *n != 0)
                .ok_or_else(|| format!("{p:?} is not a TCP port (1 to 65535)"))
        };
        match s.split_once('=') {
            Some((l, t)) => Ok(PortSpec {
                listen: port(l, true)?,
                target: port(t, false)?,
            }),
            None => {
                let p = port(s, false)?;
                Ok(PortSpec {
                    listen: p,
                    target: p,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(
            "80".parse::<PortSpec>().unwrap(),
            PortSpec {
                listen: 80,
                target: 80
            }
        );
        assert_eq!(
            "0=8080".parse::<PortSpec>().unwrap(),
            PortSpec {
                listen: 0,
                target: 8080
            }
        );
        assert!("0".parse::<PortSpec>().is_err());
        assert!("80=0".parse::<PortSpec>().is_err());
        assert!("http".parse::<PortSpec>().is_err());
        assert!("70000".parse::<PortSpec>().is_err());
    }
}
