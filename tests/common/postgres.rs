//! A real PostgreSQL server for the fleet tests: Debian's `postgresql` binaries
//! (`initdb`, `pg_ctl`), a throw-away cluster in a temp dir on a free port, started and
//! stopped by the test. PostgreSQL refuses to run as root, so under root (CI) the
//! cluster belongs to `nobody` and its commands run through `runuser`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::broker::{free_port, wait_until};

/// `/usr/lib/postgresql/<newest>/bin`.
fn pg_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").is_file());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL not found in /usr/lib/postgresql: `apt-get install postgresql` (make test does this)")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A running PostgreSQL cluster of this test.
pub struct Postgres {
    pub port: u16,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
}

impl Postgres {
    /// initdb + pg_ctl start; database `postgres`, user `postgres`, trust auth on
    /// 127.0.0.1.
    pub fn start() -> Postgres {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("edgebench-pg")
            .tempdir()
            .expect("tempdir");
        if is_root() {
            let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: chown(2) on a path we just created; nobody = 65534 on Debian.
            let rc = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
            assert_eq!(rc, 0, "chown the PostgreSQL temp dir to nobody");
        }
        let mut pg = Postgres {
            port: 0,
            dir,
            bin,
            running: false,
        };
        let data = pg.data();
        let st = pg
            .cmd("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(st.success(), "initdb failed in {}", data.display());
        for _ in 0..5 {
            pg.port = free_port();
            if pg.try_start() {
                return pg;
            }
        }
        panic!("PostgreSQL did not start; log: {}", pg.log());
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(exe);
            c.current_dir(self.dir.path());
            c
        } else {
            Command::new(exe)
        }
    }

    fn try_start(&mut self) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let st = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "30", "-o", &opts, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        self.running = st.success();
        self.running
    }

    /// The store URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new, empty database; its URL.
    pub fn new_db(&self, name: &str) -> String {
        let st = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .stdout(Stdio::null())
            .status()
            .expect("run psql");
        assert!(st.success(), "CREATE DATABASE {name}");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs one SQL statement with psql; its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server (fast shutdown: connections are cut, like a restart).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        assert!(!self.running);
        let ok = wait_until(Duration::from_secs(20), || self.try_start());
        assert!(ok, "PostgreSQL did not restart: {}", self.log());
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
