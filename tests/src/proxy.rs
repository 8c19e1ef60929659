//! A small HTTP CONNECT proxy on 127.0.0.1 for the egress tests: it accepts
//! `CONNECT host:port`, records what it was asked for (the target exactly as sent,
//! and any `Proxy-Authorization`), and tunnels bytes to the target. With
//! [`ConnectProxy::requiring`] it answers 407 to requests without the right
//! credentials, as a proxy that refuses. [`ConnectProxy::socks5`] is the same for
//! SOCKS5 (RFC 1928, with RFC 1929's user name and password).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One `CONNECT` the proxy was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The request target as sent: `127.0.0.1:8080`, `[::1]:443`, or a name.
    pub target: String,
    pub authorization: Option<String>,
    /// The first bytes the client sent through the tunnel (a TLS ClientHello for
    /// https: its SNI names the host the client verifies).
    pub first_bytes: Vec<u8>,
}

pub struct ConnectProxy {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<Connect>>>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    /// A proxy on a port of the OS's choosing.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"), None).await
    }

    /// A proxy on `addr` (a port reserved earlier with [`Self::free_port`], to start
    /// one where a sender already expects it) that answers 407 unless the request
    /// carries `Proxy-Authorization: <required>`.
    pub async fn start_on(addr: SocketAddr, required: Option<String>) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&asked);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let recorded = Arc::clone(&recorded);
                let required = required.clone();
                tokio::spawn(async move {
                    let _ = serve(client, recorded, required).await;
                });
            }
        });
        Self { addr, asked, task }
    }

    /// A proxy that wants `Proxy-Authorization: <required>`.
    pub async fn requiring(required: &str) -> Self {
        Self::start_on(
            "127.0.0.1:0".parse().expect("address"),
            Some(required.to_owned()),
        )
        .await
    }

    /// A SOCKS5 proxy; with `required` (`user:password`), it accepts only those.
    /// Its log's `authorization` is the `user:password` a client sent.
    pub async fn socks5(required: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&asked);
        let required = required.map(str::to_owned);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let recorded = Arc::clone(&recorded);
                let required = required.clone();
                tokio::spawn(async move {
                    let _ = serve_socks5(client, recorded, required).await;
                });
            }
        });
        Self { addr, asked, task }
    }

    /// A proxy that accepts connections and reads requests but never answers.
    pub async fn silent() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                held.push(client);
            }
        });
        Self {
            addr,
            asked: Arc::default(),
            task,
        }
    }

    /// A loopback address nothing listens on (yet): a proxy that is down.
    pub async fn free_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `CONNECT` so far, in order.
    pub fn asked(&self) -> Vec<Connect> {
        self.asked.lock().expect("proxy log").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    recorded: Arc<Mutex<Vec<Connect>>>,
    required: Option<String>,
) -> std::io::Result<()> {
    // The head, a byte at a time: nothing past it may be read here, it belongs to
    // the tunnel.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "CONNECT" {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let authorization = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let index = {
        let mut log = recorded.lock().expect("proxy log");
        log.push(Connect {
            target: target.to_owned(),
            authorization: authorization.clone(),
            first_bytes: Vec::new(),
        });
        log.len() - 1
    };
    if required.is_some() && authorization != required {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    // HTTP and TLS clients speak first.
    let mut first = vec![0u8; 4096];
    let n = client.read(&mut first).await?;
    first.truncate(n);
    upstream.write_all(&first).await?;
    recorded.lock().expect("proxy log")[index].first_bytes = first;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn serve_socks5(
    mut client: TcpStream,
    recorded: Arc<Mutex<Vec<Connect>>>,
    required: Option<String>,
) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    let want = if required.is_some() { 0x02 } else { 0x00 };
    if !methods.contains(&want) {
        client.write_all(&[0x05, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[0x05, want]).await?;
    let mut authorization = None;
    if want == 0x02 {
        let mut version_len = [0u8; 2];
        client.read_exact(&mut version_len).await?;
        let mut user = vec![0u8; usize::from(version_len[1])];
        client.read_exact(&mut user).await?;
        let mut len = [0u8; 1];
        client.read_exact(&mut len).await?;
        let mut password = vec![0u8; usize::from(len[0])];
        client.read_exact(&mut password).await?;
        let pair = format!(
            "{}:{}",
            String::from_utf8_lossy(&user),
            String::from_utf8_lossy(&password)
        );
        let ok = Some(&pair) == required.as_ref();
        authorization = Some(pair);
        client
            .write_all(&[0x01, if ok { 0x00 } else { 0x01 }])
            .await?;
        if !ok {
            return Ok(());
        }
    }
    let mut head = [0u8; 4];
    client.read_exact(&mut head).await?;
    let target = match head[3] {
        0x01 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::IpAddr::from(ip).to_string()
        }
        0x04 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            format!("[{}]", std::net::IpAddr::from(ip))
        }
        _ => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let target = format!("{target}:{}", u16::from_be_bytes(port));
    recorded.lock().expect("proxy log").push(Connect {
        target: target.clone(),
        authorization,
        first_bytes: Vec::new(),
    });
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        // Connection refused.
        client
            .write_all(&[0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
            .await?;
        return Ok(());
    };
    client
        .write_all(&[0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0, 0])
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
