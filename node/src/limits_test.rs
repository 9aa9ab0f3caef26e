use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

async fn listener(cap: usize, handshake: Duration) -> (CappedListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (CappedListener::new(listener, cap, "test", handshake), address)
}

/// Reads from a client connection until the server closes it (EOF or reset), up to `limit`.
async fn closed_within(client: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(tokio::time::timeout(limit, client.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_a_freed_slot_is_reused() {
    let (mut capped, address) = listener(2, Duration::from_secs(60)).await;
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = capped.next().await;
            held_tx.send(stream).unwrap();
        }
    });
    let _first = TcpStream::connect(address).await.unwrap();
    let _second = TcpStream::connect(address).await.unwrap();
    let first_held = held_rx.recv().await.unwrap();
    let _second_held = held_rx.recv().await.unwrap();

    let mut third = TcpStream::connect(address).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(10)).await, "a third connection stayed open");
    assert!(held_rx.try_recv().is_err(), "the third connection was handed out");

    // One closes on the server's side: its slot takes the next connection.
    drop(first_held);
    let _fourth = TcpStream::connect(address).await.unwrap();
    let fourth_held = tokio::time::timeout(Duration::from_secs(10), held_rx.recv()).await;
    assert!(matches!(fourth_held, Ok(Some(_))), "the freed slot was not reused");
}

#[tokio::test]
async fn a_silent_connection_fails_at_the_handshake_deadline_and_a_talking_one_does_not() {
    let (mut capped, address) = listener(8, Duration::from_millis(200)).await;
    let mut silent_client = TcpStream::connect(address).await.unwrap();
    let (mut silent, _) = capped.next().await;
    let mut talking_client = TcpStream::connect(address).await.unwrap();
    let (mut talking, _) = capped.next().await;

    let mut buf = [0u8; 64];
    let error = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("the deadline ends the read")
        .expect_err("a silent connection's read fails");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    drop(silent);
    assert!(closed_within(&mut silent_client, Duration::from_secs(10)).await);

    talking_client.write_all(&[b'x'; LimitedStream::HANDSHAKE_BYTES]).await.unwrap();
    let mut got = 0;
    while got < LimitedStream::HANDSHAKE_BYTES {
        got += talking.read(&mut buf).await.expect("the handshake bytes are read");
    }
    // Past the deadline, a connection that sent its handshake is quiet, not failed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    talking_client.write_all(b"later").await.unwrap();
    let n = talking.read(&mut buf).await.expect("a read after the deadline");
    assert_eq!(&buf[..n], b"later");
}

#[tokio::test]
async fn a_slowloris_that_sends_a_few_bytes_is_closed_too() {
    let (mut capped, address) = listener(8, Duration::from_millis(200)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let (mut server, _) = capped.next().await;
    client.write_all(b"PRI * HTTP/2.0").await.unwrap();
    let mut buf = [0u8; 64];
    let mut result = Ok(0);
    for _ in 0..4 {
        result = tokio::time::timeout(Duration::from_secs(10), server.read(&mut buf)).await.unwrap();
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.expect_err("the slow handshake fails").kind(), io::ErrorKind::TimedOut);
}

#[test]
fn the_default_cap_follows_the_file_limit_within_bounds() {
    let cap = default_grpc_connections();
    assert!((CONNECTIONS_MIN..=CONNECTIONS_MAX).contains(&cap), "{cap}");
}
