//! The PostgreSQL role: a private database server for Kong's traditional and hybrid modes.
//!
//! Kong's framework ran PostgreSQL in a Docker container (`postgres:11`/`postgres:13`, trust
//! auth, `postgres -N 2333`) and seeded it from the controller. perflab runs the distribution's
//! own server binaries on any [`Host`] instead, so the same code serves the local, docker and
//! terraform drivers: `initdb` into a private directory, trust authentication (the lab's network
//! is private and short-lived, as in Kong's framework), a port of its own, the server as a
//! background process in its own process group, and a readiness wait with `pg_isready`.
//!
//! TCP connections need a password (scram-sha-256) whenever the server is reachable from other
//! machines (its lab address is not loopback) or the caller asks for one
//! ([`PostgresOptions::password`], which Kong's adapter always sets): trusting a whole subnet
//! lets anyone on it in. The password is generated from `/dev/urandom`, handed to `initdb`
//! through a file that is removed at once, kept for the clients in a 0600 `pgpass` file in the
//! server's directory, and registered with [`crate::redact`] so no results file ever holds it.
//! The Unix socket (in the server's private directory) stays `trust`.
//!
//! PostgreSQL refuses to run as root. When the host's commands run as root (the lab machines
//! do), every server-side program (`initdb`, `postgres`, `pg_ctl`) is started through
//! `setpriv --reuid=postgres --regid=postgres --init-groups`, which `exec`s the program so the
//! spawned pid *is* the postmaster, and the data directory is `chown`ed to `postgres`. The
//! parent directories of the lab dir must be traversable by that user (`chmod o+x`); a clear
//! error says so otherwise. Clients (`psql`, `pg_dump`) connect over TCP as the lab user and
//! need no user switch.
//!
//! [`Postgres::save_pgdump`] and [`Postgres::load_pgdump`] reproduce the framework's
//! `save_pgdump`/`load_pgdump` (reference §8): a dump loaded for a benchmark has its services
//! re-pointed at the lab's upstream unless asked not to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::host::{Cmd, Host, Proc, poll_until};
use crate::{Error, Result};

/// How long one SQL command, dump or restore may take.
const SQL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Options for [`start_postgres`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// TCP port the server listens on.
    pub port: u16,
    /// The database superuser the lab (and Kong) connects as.
    pub user: String,
    /// The database created for the lab.
    pub database: String,
    /// Directory holding `initdb`, `postgres`, `pg_ctl`, `pg_dump`, `psql`, `pg_isready`; found
    /// on the host when `None` (PATH, then the newest `/usr/lib/postgresql/*/bin`).
    pub version_bin_dir: Option<String>,
    /// The superuser's password for TCP connections (scram-sha-256). `None`: trust on loopback,
    /// a generated password ([`generate_password`]) when the server listens on another address.
    pub password: Option<String>,
}

/// A random password (32 hex digits from `/dev/urandom`), registered with [`crate::redact`] so
/// that nothing the store writes contains it.
pub fn generate_password() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let pw: String = b.iter().map(|x| format!("{x:02x}")).collect();
    crate::redact::register_value(&pw);
    Ok(pw)
}

impl Default for PostgresOptions {
    /// Kong's framework defaults: user `kong`, database `kong_tests`, port 5432.
    fn default() -> Self {
        PostgresOptions {
            port: 5432,
            user: "kong".to_string(),
            database: "kong_tests".to_string(),
            version_bin_dir: None,
            password: None,
        }
    }
}

/// A running PostgreSQL server started by [`start_postgres`].
pub struct Postgres {
    host: Arc<dyn Host>,
    dir: PathBuf,
    address: String,
    port: u16,
    user: String,
    database: String,
    bin_dir: String,
    run_as: Option<String>,
    proc: Option<Box<dyn Proc>>,
    pid: u32,
    password: Option<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("host", &self.host.name())
            .field("dir", &self.dir)
            .field("dsn", &self.dsn())
            .field("pid", &self.pid)
            .finish()
    }
}

/// Quotes an SQL identifier (`"name"`, inner quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (`'text'`, inner quotes doubled).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The statement that points every Kong service at the lab's upstream, as Kong's framework's
/// `load_pgdump` does: host, port and `protocol='http'`; the service's `path` is kept, so a dump
/// whose services ask for `/test` still reaches the upstream's `location = /test`.
pub fn patch_services_sql(host: &str, port: u16) -> String {
    format!(
        "UPDATE services SET host = {}, port = {port}, protocol = 'http';",
        quote_literal(host)
    )
}

/// `DROP DATABASE` for the quoted name `db` on a server at `server_version_num`: `WITH (FORCE)`
/// (which ends other sessions, such as a Kong still connected) exists from PostgreSQL 13 on;
/// older servers refuse the clause, so they get the plain statement.
pub fn drop_database_sql(db: &str, server_version_num: u32) -> String {
    if server_version_num >= 130000 {
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS {db}")
    }
}

/// True when a plain-SQL dump creates tables (a full dump, restored into a fresh database);
/// false for a data-only dump like Kong's `500services-each-4-routes.sql` fixture, which is
/// loaded into the existing schema (made by `kong migrations bootstrap`).
pub fn dump_has_schema(sql: &str) -> bool {
    sql.lines().any(|l| {
        l.trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE TABLE")
    })
}

fn lab_err(what: &str, out: &crate::host::CmdOutput) -> Error {
    Error::Lab(format!(
        "postgres: {what} failed (exit {:?}):\n{}",
        out.code,
        out.combined_text()
    ))
}

/// Finds the PostgreSQL server binaries on `host`.
fn find_bin_dir(host: &dyn Host, wanted: &Option<String>) -> Result<String> {
    if let Some(d) = wanted {
        return Ok(d.clone());
    }
    // PATH may hold only symlinks to a few of the programs (Debian's wrappers, a hand-made
    // /usr/local/bin/initdb): follow the link to the directory that has them all.
    if let Some(initdb) = host.which("initdb") {
        let real = host
            .run(
                &Cmd::new("readlink").args(["-f", &initdb]),
                Duration::from_secs(10),
            )
            .ok()
            .filter(|o| o.success())
            .map(|o| o.stdout_text().trim().to_string())
            .unwrap_or(initdb);
        if let Some(parent) = Path::new(&real).parent() {
            return Ok(parent.display().to_string());
        }
    }
    // The newest server; only the shell is used (a lab image has no sort or tail).
    let out = host.run(
        &Cmd::new("sh").arg("-c").arg(
            r#"for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && echo "$d"; done; true"#,
        ),
        Duration::from_secs(10),
    )?;
    let major = |d: &str| {
        d.trim_start_matches("/usr/lib/postgresql/")
            .split('/')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let newest = out
        .stdout_text()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .max_by_key(|d| major(d))
        .map(str::to_string);
    if let Some(dir) = newest {
        return Ok(dir);
    }
    Err(Error::MissingTool {
        program: "initdb (PostgreSQL server)".to_string(),
        where_: format!(" on host {}", host.name()),
        hint: "install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`) or set \
               version_bin_dir to the directory holding initdb and postgres"
            .to_string(),
    })
}

impl Postgres {
    fn bin(&self, program: &str) -> String {
        format!("{}/{program}", self.bin_dir)
    }

    /// A server-side command, run as the `postgres` user when the host runs commands as root.
    fn server_cmd(&self, program: &str) -> Cmd {
        server_cmd(&self.run_as, &self.bin(program))
    }

    fn client_cmd(&self, program: &str, database: &str) -> Cmd {
        let cmd = Cmd::new(self.bin(program))
            .args(["-h", &self.address, "-p"])
            .arg(self.port.to_string())
            .args(["-U", &self.user, "-d", database]);
        match &self.password {
            Some(_) => cmd.env("PGPASSFILE", self.pass_file().display().to_string()),
            None => cmd,
        }
    }

    /// The clients' password file (0600), when the server has a password.
    fn pass_file(&self) -> PathBuf {
        self.dir.join("pgpass")
    }

    /// The superuser's password for TCP connections, when it has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The connection string (`postgresql://user@address:port/database`).
    pub fn dsn(&self) -> String {
        format!(
            "postgresql://{}@{}:{}/{}",
            self.user, self.address, self.port, self.database
        )
    }

    /// The address the server listens on (the host's lab address).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The lab's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The server's private directory on its host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The postmaster's pid on its host (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server log on its host.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Runs SQL in the lab database with `psql` (unaligned, tuples only, stop on error) and
    /// returns its standard output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_in(&self.database, &[sql])
    }

    /// The server's `server_version_num` (`150004` for 15.4).
    pub fn server_version_num(&self) -> Result<u32> {
        let out = self.psql_in("postgres", &["SHOW server_version_num"])?;
        out.trim().parse().map_err(|_| {
            Error::Lab(format!(
                "PostgreSQL on {} reported no server_version_num: {out:?}",
                self.host.name()
            ))
        })
    }

    /// Runs SQL in `database` (another database of this server than the lab's, e.g. one per
    /// Kong version) with `psql`, as [`Postgres::psql`] does.
    pub fn psql_on(&self, database: &str, sql: &str) -> Result<String> {
        self.psql_in(database, &[sql])
    }

    /// Creates `database` (owned by the lab's user) unless it exists; true when it was created.
    pub fn create_database_if_missing(&self, database: &str) -> Result<bool> {
        let exists = self.psql_in(
            "postgres",
            &[&format!(
                "SELECT 1 FROM pg_database WHERE datname = {}",
                quote_literal(database)
            )],
        )?;
        if exists.trim() == "1" {
            return Ok(false);
        }
        self.psql_in(
            "postgres",
            &[&format!("CREATE DATABASE {}", quote_ident(database))],
        )?;
        Ok(true)
    }

    fn psql_in(&self, database: &str, statements: &[&str]) -> Result<String> {
        let mut cmd = self.client_cmd("psql", database).args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ]);
        for s in statements {
            cmd = cmd.arg("-c").arg(*s);
        }
        let out = self.host.run(&cmd, SQL_TIMEOUT)?;
        if !out.success() {
            return Err(lab_err("psql", &out));
        }
        Ok(out.stdout_text())
    }

    /// Dumps the lab database as plain SQL (schema and data, no owners or privileges, so it
    /// restores under any user) and writes it to `path_local` on this machine.
    pub fn save_pgdump(&self, path_local: &Path) -> Result<()> {
        let cmd = self.client_cmd("pg_dump", &self.database).args([
            "--no-owner",
            "--no-privileges",
            "--format=plain",
        ]);
        let out = self.host.run(&cmd, SQL_TIMEOUT)?;
        if !out.success() {
            return Err(lab_err("pg_dump", &out));
        }
        if let Some(parent) = path_local.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        crate::util::fs::atomic_write(path_local, &out.stdout).map_err(|e| Error::io(path_local, e))
    }

    /// Restores a plain-SQL dump from `path_local` (on this machine).
    ///
    /// A full dump (one that creates tables) is restored into a freshly dropped and re-created
    /// database; a data-only dump (Kong's framework style) is loaded into the existing schema.
    /// Unless `dont_patch_service`, every service is then pointed at `upstream` (host, port) with
    /// [`patch_services_sql`], as the framework did; without an upstream that is an error, like
    /// the framework's "worker not started".
    pub fn load_pgdump(
        &self,
        path_local: &Path,
        dont_patch_service: bool,
        upstream: Option<(&str, u16)>,
    ) -> Result<()> {
        let sql = std::fs::read(path_local).map_err(|e| Error::io(path_local, e))?;
        if !dont_patch_service && upstream.is_none() {
            return Err(Error::Lab(
                "load_pgdump: no upstream to point the services at (start the upstream first, \
                 or pass dont_patch_service)"
                    .to_string(),
            ));
        }
        if dump_has_schema(&String::from_utf8_lossy(&sql)) {
            let db = quote_ident(&self.database);
            let version = self.server_version_num()?;
            self.psql_in(
                "postgres",
                &[
                    &drop_database_sql(&db, version),
                    &format!("CREATE DATABASE {db}"),
                ],
            )?;
        }
        let remote = self.dir.join("load.sql");
        self.host.write_file(&remote, &sql)?;
        let cmd = self
            .client_cmd("psql", &self.database)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(remote.display().to_string());
        let out = self.host.run(&cmd, SQL_TIMEOUT)?;
        if !out.success() {
            return Err(lab_err(&format!("loading {}", path_local.display()), &out));
        }
        if !dont_patch_service && let Some((host, port)) = upstream {
            self.psql(&patch_services_sql(host, port))?;
        }
        Ok(())
    }

    /// Stops the server: a fast shutdown with `pg_ctl stop`, then TERM/KILL to its process group
    /// if it is still there. Calling it twice is fine.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut proc) = self.proc.take() else {
            return Ok(());
        };
        if proc.is_running() {
            let cmd = self
                .server_cmd("pg_ctl")
                .args(["stop", "-m", "fast", "-w", "-t", "30", "-D"])
                .arg(self.dir.join("data").display().to_string());
            let _ = self.host.run(&cmd, Duration::from_secs(40));
            let _ = proc.wait_timeout(Duration::from_secs(5))?;
        }
        proc.stop(Duration::from_secs(5))?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn server_cmd(run_as: &Option<String>, program: &str) -> Cmd {
    match run_as {
        Some(user) => Cmd::new("setpriv")
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg(program),
        None => Cmd::new(program),
    }
}

/// Starts a private PostgreSQL server on `host` with its data in `dir` (created; must not hold
/// another server's data), listening on the host's lab address and `opts.port`, with trust
/// authentication on loopback and a password elsewhere (see the module docs), and creates
/// `opts.database` owned by the superuser `opts.user`.
pub fn start_postgres(host: Arc<dyn Host>, dir: &Path, opts: PostgresOptions) -> Result<Postgres> {
    let bin_dir = find_bin_dir(host.as_ref(), &opts.version_bin_dir)?;
    let uid = host.run(&Cmd::new("id").arg("-u"), Duration::from_secs(10))?;
    let run_as = (uid.stdout_text().trim() == "0").then(|| "postgres".to_string());
    let t = Duration::from_secs(30);
    let dir_s = dir.display().to_string();
    let data = dir.join("data");
    let data_s = data.display().to_string();

    let mk = host.run(&Cmd::new("mkdir").args(["-p", &dir_s]), t)?;
    if !mk.success() {
        return Err(lab_err(&format!("creating {dir_s}"), &mk));
    }
    if let Some(user) = &run_as {
        let chown = host.run(&Cmd::new("chown").arg(format!("{user}:")).arg(&dir_s), t)?;
        if !chown.success() {
            return Err(lab_err(
                &format!("chown {dir_s} to `{user}` (PostgreSQL refuses to run as root)"),
                &chown,
            ));
        }
        let reach = host.run(&server_cmd(&run_as, "test").args(["-w", &dir_s]), t)?;
        if !reach.success() {
            return Err(Error::Lab(format!(
                "postgres: user `{user}` cannot write to {dir_s}: make its parent directories \
                 traversable (chmod o+x) or choose a lab dir under /tmp"
            )));
        }
    }

    let loopback = host.address().starts_with("127.") || host.address() == "::1";
    let password = match (&opts.password, loopback) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(generate_password()?),
    };
    let mut pg = Postgres {
        password,
        host: host.clone(),
        dir: dir.to_path_buf(),
        address: host.address(),
        port: opts.port,
        user: opts.user.clone(),
        database: opts.database.clone(),
        bin_dir,
        run_as,
        proc: None,
        pid: 0,
    };

    // The password reaches initdb through a file that only exists while it runs.
    let pw_file = dir.join("pwfile");
    let mut initdb = pg
        .server_cmd("initdb")
        .args(["-D", &data_s, "-U", &opts.user])
        .args([
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
    if let Some(pw) = &pg.password {
        write_private(&pg, &pw_file, format!("{pw}\n").as_bytes())?;
        write_private(&pg, &pg.pass_file(), format!("*:*:*:*:{pw}\n").as_bytes())?;
        initdb = initdb
            .arg("--auth-host=scram-sha-256")
            .arg(format!("--pwfile={}", pw_file.display()));
    } else {
        initdb = initdb.arg("--auth-host=trust");
    }
    let out = host.run(&initdb.cwd(dir), Duration::from_secs(180));
    let _ = host.run(
        &Cmd::new("rm").arg("-f").arg(pw_file.display().to_string()),
        t,
    );
    let out = out?;
    if !out.success() {
        return Err(lab_err("initdb", &out));
    }

    // Our own pg_hba.conf: the Unix socket (in the private dir) is trusted; TCP needs the
    // password when there is one (always when other machines can reach the server), else is
    // trusted on loopback only.
    let tcp = if pg.password.is_some() {
        "scram-sha-256"
    } else {
        "trust"
    };
    let mut hba = format!(
        "# written by perflab\nlocal all all trust\nhost all all 127.0.0.1/32 {tcp}\nhost all all ::1/128 {tcp}\n"
    );
    if !loopback {
        hba.push_str("host all all samenet scram-sha-256\n");
    }
    let hba_path = dir.join("pg_hba.conf");
    host.write_file(&hba_path, hba.as_bytes())?;
    let listen = if loopback {
        pg.address.clone()
    } else {
        format!("127.0.0.1,{}", pg.address)
    };
    let server = pg
        .server_cmd("postgres")
        .args(["-D", &data_s, "-p"])
        .arg(opts.port.to_string())
        .args(["-N", "2333", "-c"])
        .arg(format!("listen_addresses={listen}"))
        .arg("-c")
        .arg(format!("unix_socket_directories={dir_s}"))
        .arg("-c")
        .arg(format!("hba_file={}", hba_path.display()))
        .cwd(dir);
    if let Some(user) = &pg.run_as {
        // write_file may create the file owner-only; the server must read it.
        let _ = host.run(
            &Cmd::new("chown")
                .arg(format!("{user}:"))
                .arg(hba_path.display().to_string()),
            t,
        )?;
    }
    let proc = host.spawn(&server, &pg.log_path())?;
    pg.pid = proc.pid();
    pg.proc = Some(proc);

    let ready_cmd = Cmd::new(pg.bin("pg_isready"))
        .args(["-h", &pg.address, "-p"])
        .arg(opts.port.to_string())
        .args(["-U", &opts.user, "-d", "postgres", "-t", "2"]);
    let mut exited = false;
    let ready = poll_until(READY_TIMEOUT, Duration::from_millis(200), || {
        if !pg.proc.as_mut().is_some_and(|p| p.is_running()) {
            exited = true;
            return Some(false);
        }
        match host.run(&ready_cmd, Duration::from_secs(10)) {
            Ok(o) if o.success() => Some(true),
            _ => None,
        }
    });
    if ready != Some(true) {
        let log = host
            .read_file(&pg.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let port_busy = log.contains("Address already in use");
        let _ = pg.stop();
        crate::signals::check()?;
        if port_busy {
            return Err(Error::PortInUse {
                port: opts.port,
                host: host.name().to_string(),
                detail: log.trim().to_string(),
            });
        }
        return Err(Error::Lab(format!(
            "postgres on {} {} (log {}):\n{}",
            host.name(),
            if exited {
                "exited during start"
            } else {
                "did not accept connections in time"
            },
            pg.log_path().display(),
            log.trim()
        )));
    }
    pg.psql_in(
        "postgres",
        &[&format!("CREATE DATABASE {}", quote_ident(&opts.database))],
    )?;
    Ok(pg)
}

/// Writes a file readable by its owner only (0600), owned by the server's user when the server
/// runs as another user than the host's commands (initdb reads the password file as that user).
fn write_private(pg: &Postgres, path: &Path, data: &[u8]) -> Result<()> {
    pg.host.write_file(path, data)?;
    let p = path.display().to_string();
    let mut script = String::from("chmod 600 \"$1\"");
    if path.file_name().is_some_and(|n| n == "pwfile")
        && let Some(user) = &pg.run_as
    {
        script.push_str(&format!(" && chown {user}: \"$1\""));
    }
    let out = pg.host.run(
        &Cmd::new("sh").arg("-c").arg(script).arg("sh").arg(&p),
        Duration::from_secs(30),
    )?;
    if !out.success() {
        return Err(lab_err(&format!("restricting {p} to its owner"), &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_drop_only_from_postgresql_13() {
        assert_eq!(
            drop_database_sql("\"kong\"", 150004),
            "DROP DATABASE IF EXISTS \"kong\" WITH (FORCE)"
        );
        assert_eq!(
            drop_database_sql("\"kong\"", 120017),
            "DROP DATABASE IF EXISTS \"kong\""
        );
    }

    #[test]
    fn quotes_sql() {
        assert_eq!(quote_ident("kong\"x"), "\"kong\"\"x\"");
        assert_eq!(quote_literal("o'k"), "'o''k'");
        assert_eq!(
            patch_services_sql("10.0.0.2", 18088),
            "UPDATE services SET host = '10.0.0.2', port = 18088, protocol = 'http';"
        );
    }

    #[test]
    fn tells_full_from_data_only_dumps() {
        assert!(dump_has_schema("SET x;\nCREATE TABLE public.services (\n"));
        assert!(!dump_has_schema(
            "TRUNCATE services CASCADE;\nINSERT INTO services VALUES (1);\n"
        ));
    }
}
