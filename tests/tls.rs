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

/// A loopback relay in front of the cluster that records the server name
/// (SNI) of every TLS ClientHello passing through it, the way Neon's proxy
/// reads it to find the endpoint.
struct SniRelay {
    port: u16,
    names: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl SniRelay {
    async fn start(upstream: u16) -> SniRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));

        let seen = names.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay_one(client, upstream, seen).await {
                        eprintln!("sni relay: {e}");
                    }
                });
            }
        });
        SniRelay { port, names }
    }

    fn names(&self) -> Vec<Option<String>> {
        self.names.lock().unwrap().clone()
    }
}

/// Relays one connection: PostgreSQL's plaintext SSLRequest and its answer,
/// then the ClientHello (read whole, its server name recorded), then
/// everything else unchanged in both directions.
async fn relay_one(
    mut client: tokio::net::TcpStream,
    upstream: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;

    let mut request = [0u8; 8];
    client.read_exact(&mut request).await?;
    server.write_all(&request).await?;
    let is_ssl_request = request[4..] == [0x04, 0xd2, 0x16, 0x2f];
    if is_ssl_request {
        let mut answer = [0u8; 1];
        server.read_exact(&mut answer).await?;
        client.write_all(&answer).await?;
        if answer[0] == b'S' {
            let hello = read_client_hello(&mut client, &seen).await?;
            server.write_all(&hello).await?;
        }
    }

    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// Reads from `client` until rustls sees a whole ClientHello, records its
/// server name, and returns every byte read so it can be passed on.
async fn read_client_hello(
    client: &mut tokio::net::TcpStream,
    seen: &std::sync::Mutex<Vec<Option<String>>>,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;

    let mut acceptor = rustls::server::Acceptor::default();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
        acceptor.read_tls(&mut &chunk[..n])?;
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let name = accepted.client_hello().server_name().map(str::to_string);
                seen.lock().unwrap().push(name);
                return Ok(bytes);
            }
            Err((e, _)) => return Err(std::io::Error::other(e)),
        }
    }
}

impl SniRelay {
    /// Connects through the relay to `host` with `query`, checks that the
    /// session is encrypted, and returns the server names its connections
    /// sent (at least one).
    async fn names_sent(&self, host: &str, query: &str) -> Vec<Option<String>> {
        let before = self.names().len();
        let url = format!(
            "postgres://postgres:s3cret@{host}:{}/postgres?{query}",
            self.port
        );
        let store = connect(&url).await.unwrap();
        assert!(is_encrypted(&store).await, "{host} {query}: not encrypted");
        store.close().await;

        let names = self.names()[before..].to_vec();
        assert!(
            !names.is_empty(),
            "{host} {query}: no ClientHello passed the relay"
        );
        names
    }
}

/// Neon routes a connection to its endpoint by the TLS server name, so the
/// host name in the URL must go out as SNI, with `require` as with
/// `verify-full`. An address is not a name and is not sent.
#[tokio::test]
async fn the_host_name_is_sent_as_sni() {
    let cluster = TlsCluster::start();
    let relay = SniRelay::start(cluster.port).await;
    let localhost = Some("localhost".to_string());

    let verified = format!("sslmode=verify-full&sslrootcert={}", cluster.ca());
    let names = relay.names_sent("localhost", &verified).await;
    assert!(
        names.iter().all(|n| *n == localhost),
        "verify-full sent {names:?}"
    );

    let names = relay.names_sent("localhost", "sslmode=require").await;
    assert!(
        names.iter().all(|n| *n == localhost),
        "require sent {names:?}"
    );

    let names = relay.names_sent("127.0.0.1", "sslmode=require").await;
    assert!(
        names.iter().all(Option::is_none),
        "an address sent {names:?}"
    );
}
