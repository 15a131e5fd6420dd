//! A minimal HTTP endpoint for Prometheus scrapes: `GET /metrics` collects the meter
//! provider's state through the Prometheus exporter and answers its text exposition.
//! Anything else gets 404. No keep-alive, one request per connection.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

/// Most request bytes read: a scrape's request line and headers fit well within this.
const MAX_REQUEST: usize = 8 * 1024;

/// Bind now (so a bad address fails at start-up), then serve in a task.
pub async fn spawn(addr: SocketAddr, registry: prometheus::Registry) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; MAX_REQUEST];
                let mut len = 0;
                while len < MAX_REQUEST {
                    match stream.read(&mut request[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    if request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&request[..len]);
                let response = if let Some(response) = crate::edges::api::respond(&head, crate::edges::shared()) {
                    response
                } else if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
                    let body = super::telemetry::scrape_registry(&registry);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(bound)
}
