//! A loopback TCP proxy in front of PostgreSQL that a test can cut and
//! restore, to stage a database outage without stopping the shared server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding a loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let mut proxy = Proxy {
            addr,
            upstream,
            up: Arc::new(AtomicBool::new(true)),
            cut: Arc::new(Notify::new()),
            accept: None,
        };
        proxy.accept = Some(proxy.serve(listener));
        proxy
    }

    /// A proxy in front of the server a PostgreSQL URL names, and the same URL
    /// pointing at the proxy instead.
    pub async fn in_front_of(url: &str) -> (Proxy, String) {
        let upstream = url::Url::parse(url).expect("a database URL");
        let host = upstream.host_str().expect("a host in the URL");
        let address = format!("{host}:{}", upstream.port().unwrap_or(5432));
        let address = tokio::net::lookup_host(address)
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = Proxy::start(address).await;
        let mut via = upstream.clone();
        via.set_host(Some("127.0.0.1")).unwrap();
        via.set_port(Some(proxy.addr.port())).unwrap();
        (proxy, via.to_string())
    }

    fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let upstream = self.upstream;
        let cut = self.cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let cut = cut.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        })
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        self.cut.notify_waiters();
    }

    /// Accepts connections again on the same port.
    pub async fn restore(&mut self) {
        // The aborted accept task lets go of the old listener shortly after.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("re-bind proxy port {}: {e}", self.addr),
            }
        };
        self.accept = Some(self.serve(listener));
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        self.cut.notify_waiters();
    }
}
