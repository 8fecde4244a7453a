//! The installer's questions, asked on the terminal with dialoguer: only those whose
//! answer was not given as a flag. Without a terminal nothing is asked: the caller turns a
//! missing answer into an error naming its flag ([`missing`]).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

use crate::installer::Choice;

/// Whether questions can be asked: standard input and standard error (where dialoguer
/// draws) are both a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The error for an answer that cannot be asked for.
pub fn missing(what: &str, flag: &str) -> anyhow::Error {
    anyhow::anyhow!("no terminal to ask for {what} on: give {flag}")
}

fn theme() -> ColorfulTheme {
    ColorfulTheme::default()
}

fn asked<T>(r: dialoguer::Result<T>) -> anyhow::Result<T> {
    r.context("cannot read the answer from the terminal")
}

/// Picks one of `choices` (Enter takes the first, the recommended one).
pub fn image(choices: &[Choice]) -> anyhow::Result<usize> {
    let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
    asked(
        Select::with_theme(&theme())
            .with_prompt("Image to install (arrows to move, Enter to choose)")
            .items(&labels)
            .default(0)
            .max_length(12)
            .interact(),
    )
}

/// The WSL name, checked with `valid` as it is typed.
pub fn name(default: &str, valid: impl Fn(&str) -> Result<(), String>) -> anyhow::Result<String> {
    asked(
        Input::<String>::with_theme(&theme())
            .with_prompt("Name in WSL")
            .default(default.to_string())
            .validate_with(|s: &String| valid(s.trim()))
            .interact_text(),
    )
    .map(|s| s.trim().to_string())
}

/// The directory for the virtual disk.
pub fn location(
    default: Option<PathBuf>,
    valid: impl Fn(&std::path::Path) -> Result<(), String>,
) -> anyhow::Result<PathBuf> {
    let theme = theme();
    let mut input = Input::<String>::with_theme(&theme).with_prompt("Location of its disk");
    if let Some(d) = default {
        input = input.default(d.display().to_string());
    }
    asked(
        input
            .validate_with(|s: &String| valid(std::path::Path::new(s.trim())))
            .interact_text(),
    )
    .map(|s| PathBuf::from(s.trim()))
}

/// The Linux user name.
pub fn user(valid: impl Fn(&str) -> Result<(), String>) -> anyhow::Result<String> {
    asked(
        Input::<String>::with_theme(&theme())
            .with_prompt("Linux user name (with sudo rights)")
            .validate_with(|s: &String| valid(s.trim()))
            .interact_text(),
    )
    .map(|s| s.trim().to_string())
}

/// The password, typed twice.
pub fn password(user: &str, valid: impl Fn(&str) -> Result<(), String>) -> anyhow::Result<String> {
    asked(
        Password::with_theme(&theme())
            .with_prompt(format!("Password for {user}"))
            .with_confirmation("Repeat it", "The passwords differ; again")
            .validate_with(|s: &String| valid(s))
            .interact(),
    )
}

/// A yes/no question; `default` is what Enter answers.
pub fn confirm(question: &str, default: bool) -> anyhow::Result<bool> {
    asked(
        Confirm::with_theme(&theme())
            .with_prompt(question)
            .default(default)
            .interact(),
    )
}

/// "Press Enter to close": a window opened by a double-click would otherwise vanish with
/// its last message.
pub fn wait_for_enter() {
    eprint!("Press Enter to close this window.");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
