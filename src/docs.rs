//! Man pages and shell completions generated from the CLI definition
//! (`edgebench gen-docs`): `edgebench.1` plus one `edgebench-<subcommand>.1` per visible
//! subcommand (clap_mangen), and bash, zsh and fish completions (clap_complete). The
//! packages install the copies committed under `packaging/docs/`; `scripts/gen-docs.sh`
//! regenerates them and `make test` checks they match the CLI.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// Where `gen-docs` writes.
#[derive(clap::Args, Debug)]
pub struct GenDocsArgs {
    /// Directory for the man pages (section 1).
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
    /// Directory for the completions: `edgebench.bash`, `_edgebench` (zsh),
    /// `edgebench.fish`.
    #[arg(long, value_name = "DIR")]
    pub completions: Option<PathBuf>,
}

/// Shells with completions, and the file name each one's packages expect.
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "edgebench.bash"),
    (Shell::Zsh, "_edgebench"),
    (Shell::Fish, "edgebench.fish"),
];

/// The command as users see it: hidden subcommands (this generator) left out, so they
/// appear in neither the man pages nor the completions.
pub fn visible(cmd: &Command) -> Command {
    // The binary's name and version: clap takes only 'static strings here.
    let mut out = Command::new("edgebench")
        .subcommand_required(cmd.is_subcommand_required_set())
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if cmd.get_version().is_some() {
        out = out.version(crate::VERSION);
    }
    if let Some(a) = cmd.get_about() {
        out = out.about(a.clone());
    }
    if let Some(a) = cmd.get_long_about() {
        out = out.long_about(a.clone());
    }
    out
}

/// `edgebench gen-docs`: writes what `args` asks for and lists the files on stdout.
pub fn run(cmd: &Command, args: &GenDocsArgs) -> Result<std::process::ExitCode> {
    for f in generate(cmd, args)? {
        println!("{}", f.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes what `args` asks for; returns the files written.
pub fn generate(cmd: &Command, args: &GenDocsArgs) -> Result<Vec<PathBuf>> {
    let cmd = visible(cmd);
    let mut written = Vec::new();
    if let Some(dir) = &args.man {
        written.extend(man_pages(&cmd, dir)?);
    }
    if let Some(dir) = &args.completions {
        written.extend(completions(&cmd, dir)?);
    }
    if args.man.is_none() && args.completions.is_none() {
        anyhow::bail!("gen-docs: nothing to do; give --man DIR and/or --completions DIR");
    }
    Ok(written)
}

/// `edgebench.1` and `edgebench-<sub>.1` for every visible subcommand (nested ones too).
fn man_pages(cmd: &Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd.clone(), dir)
        .with_context(|| format!("writing man pages to {}", dir.display()))?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("edgebench") && name.ends_with(".1") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn completions(cmd: &Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for (shell, file) in SHELLS {
        let path = dir.join(file);
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        clap_complete::generate(*shell, &mut cmd.clone(), "edgebench", &mut f);
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Command {
        Command::new("edgebench")
            .version("0.1.0")
            .about("bench")
            .subcommand_required(true)
            .subcommand(Command::new("run").about("Run a sweep"))
            .subcommand(Command::new("gen-docs").hide(true))
    }

    #[test]
    fn hidden_subcommands_are_left_out() {
        let v = visible(&sample());
        let names: Vec<_> = v.get_subcommands().map(|s| s.get_name()).collect();
        assert_eq!(names, ["run"]);
        assert_eq!(v.get_version(), Some(crate::VERSION));
    }

    #[test]
    fn writes_one_page_per_subcommand_and_three_completions() {
        let tmp = tempfile::tempdir().unwrap();
        let args = GenDocsArgs {
            man: Some(tmp.path().join("man")),
            completions: Some(tmp.path().join("comp")),
        };
        let files = generate(&sample(), &args).unwrap();
        for f in &files {
            assert!(f.is_file(), "{} missing", f.display());
        }
        assert!(tmp.path().join("man/edgebench-run.1").is_file());
        assert!(!tmp.path().join("man/edgebench-gen-docs.1").exists());
        let bash = std::fs::read_to_string(tmp.path().join("comp/edgebench.bash")).unwrap();
        assert!(bash.contains("run") && !bash.contains("gen-docs"), "{bash}");
    }
}
