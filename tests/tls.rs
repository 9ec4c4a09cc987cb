//! TLS to PostgreSQL for real: a throwaway cluster with `ssl = on` and a
//! certificate made for `localhost` by a throwaway authority. `sslmode` is
//! honoured: `require` encrypts without checking the certificate,
//! `verify-full` checks the chain and the host name, and a failure says what
//! to check without showing the password.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use egress_audit::config::DatabaseConfig;
use egress_audit::store::Store;

/// A PostgreSQL cluster of this test's own, stopped on drop.
struct TlsCluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are needed (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

impl TlsCluster {
    fn start() -> TlsCluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        make_certificates(&certs);

        let bin = postgres_bin();
        run(Command::new("chown")
            .arg("-R")
            .arg("postgres")
            .arg(dir.path()));
        run(Command::new("chmod").arg("755").arg(dir.path()));
        run(as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust"]));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={cert} \
             -c ssl_key_file={key}",
            sock = dir.path().display(),
            cert = certs.join("server.crt").display(),
            key = certs.join("server.key").display(),
        );
        run(as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.path().join("server.log"))
            .args(["-w", "start"]));
        TlsCluster { dir, port, bin }
    }

    fn ca(&self) -> String {
        self.dir.path().join("certs/ca.crt").display().to_string()
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:s3cret@{host}:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A CA, and a server certificate for `localhost` signed by it.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=egress-audit test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    run(Command::new("chmod").arg("600").arg(dir.join("server.key")));
}

async fn connect(url: &str) -> Result<Store, String> {
    let config = DatabaseConfig {
        url: url.to_string(),
        connect_timeout: Duration::from_secs(5),
        ..DatabaseConfig::default()
    };
    Store::open(&config).await.map_err(|e| e.to_string())
}

async fn is_encrypted(store: &Store) -> bool {
    let Store::Postgres(pool) = store else {
        panic!("not postgres")
    };
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sslmode_is_honoured_against_a_server_with_tls() {
    let cluster = TlsCluster::start();

    let store = connect(&cluster.url("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    assert!(is_encrypted(&store).await, "require encrypts");
    store.close().await;

    let verified = format!("sslmode=verify-full&sslrootcert={}", cluster.ca());
    let store = connect(&cluster.url("localhost", &verified)).await.unwrap();
    assert!(is_encrypted(&store).await, "verify-full encrypts");
    store.close().await;

    // The certificate names localhost, not 127.0.0.1: verify-full refuses.
    let err = connect(&cluster.url("127.0.0.1", &verified))
        .await
        .expect_err("refused");
    assert!(
        err.contains("127.0.0.1") && err.contains("sslmode"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    // Without the test authority, the chain is not trusted.
    let err = connect(&cluster.url("localhost", "sslmode=verify-full"))
        .await
        .expect_err("refused");
    assert!(
        err.contains("certificate") || err.contains("TLS") || err.contains("tls"),
        "{err}"
    );

    // sslmode=disable: the same server, no encryption.
    let store = connect(&cluster.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap();
    assert!(!is_encrypted(&store).await, "disable does not encrypt");
    store.close().await;
}
