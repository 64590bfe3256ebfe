//! A TCP relay on an ephemeral loopback port that stands for the network path to a Redis
//! server: every chunk from client to server is held for `delay` (a slow server: each command
//! answers `delay` late, without capping throughput), and the upstream can be moved to another
//! port with every open connection cut, as a virtual IP moves in a failover.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub struct SlowProxy {
    pub port: u16,
    upstream: Arc<AtomicU16>,
    cut: watch::Sender<u64>,
}

impl SlowProxy {
    /// Relays to `127.0.0.1:upstream`, holding each client chunk for `delay`.
    pub async fn start(upstream: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Arc::new(AtomicU16::new(upstream));
        let (cut, cut_rx) = watch::channel(0u64);
        let target = upstream.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let port = target.load(Ordering::SeqCst);
                let cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await {
                        relay(client, server, delay, cut_rx).await;
                    }
                });
            }
        });
        Self { port, upstream, cut }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// New connections go to `port`; the open ones are cut (their queued chunks are dropped).
    pub fn move_to(&self, port: u16) {
        self.upstream.store(port, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn relay(client: TcpStream, server: TcpStream, delay: Duration, mut cut: watch::Receiver<u64>) {
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let (held_tx, mut held_rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let inbound = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if held_tx.send((Instant::now() + delay, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let to_server = async move {
        while let Some((due, chunk)) = held_rx.recv().await {
            tokio::time::sleep_until(due).await;
            if server_wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    let to_client = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if client_wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let seen = *cut.borrow();
    tokio::select! {
        _ = async { tokio::join!(inbound, to_server) } => {}
        _ = to_client => {}
        _ = cut.wait_for(|n| *n != seen) => {}
    }
}
