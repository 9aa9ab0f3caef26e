use super::*;

/// An echo server on loopback; returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    address
}

async fn proxy(target: SocketAddr, delay: Delay) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, target, delay));
    address
}

async fn round_trip(proxy: SocketAddr, message: &[u8]) -> (Vec<u8>, Duration) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let started = std::time::Instant::now();
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    (back, started.elapsed())
}

#[tokio::test]
async fn holds_data_for_the_delay_each_way() {
    let echo = echo_server().await;
    let delay = Delay::new(Duration::from_millis(200));
    let proxy = proxy(echo, delay.clone()).await;
    let (back, elapsed) = round_trip(proxy, b"ping").await;
    assert_eq!(back, b"ping");
    // 200 ms to the echo server and 200 ms back; only a generous lower bound is asserted.
    assert!(elapsed >= Duration::from_millis(300), "round trip took only {elapsed:?}");
}

#[tokio::test]
async fn passes_large_data_in_order_and_follows_delay_changes() {
    let echo = echo_server().await;
    let delay = Delay::new(Duration::ZERO);
    let proxy = proxy(echo, delay.clone()).await;
    let message: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (back, _) = round_trip(proxy, &message).await;
    assert_eq!(back, message);
    delay.set(Duration::from_millis(150));
    let (_, elapsed) = round_trip(proxy, b"x").await;
    assert!(elapsed >= Duration::from_millis(200), "round trip took only {elapsed:?}");
}

#[tokio::test]
async fn closes_when_the_target_is_down() {
    // A socket bound but never listening: a connect to its port is refused, and holding it keeps
    // the port from going to another test's listener (a listener bound then dropped freed its
    // port, which a test running beside this one could take: the proxy then connected to it and
    // this read waited out its timeout).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = reserved.local_addr().unwrap();
    let proxy = proxy(dead, Delay::default()).await;
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the proxy closes a connection it cannot forward");
    drop(reserved);
}

#[test]
fn control_lines() {
    assert_eq!(parse_control("delay 120"), Ok(Duration::from_millis(120)));
    assert_eq!(parse_control("  delay 0 "), Ok(Duration::ZERO));
    assert!(parse_control("delay").is_err());
    assert!(parse_control("delay -3").is_err());
    assert!(parse_control("delay 1 2").is_err());
    assert!(parse_control("delay 999999999").is_err());
}

/// Datagrams reach the target after the delay, in order, and a delay of 0 passes them at once.
#[tokio::test]
async fn relays_datagrams_after_the_delay() {
    let target = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_address = relay.local_addr().unwrap();
    let delay = Delay::new(Duration::from_millis(200));
    tokio::spawn(relay_datagrams(relay, target.local_addr().unwrap(), delay.clone()));
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = std::time::Instant::now();
    for message in [&b"one"[..], b"two", b"three"] {
        sender.send_to(message, relay_address).await.unwrap();
    }
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(5), target.recv(&mut buf)).await.unwrap().unwrap();
        got.push(buf[..n].to_vec());
    }
    assert!(started.elapsed() >= Duration::from_millis(200), "held for the delay: {:?}", started.elapsed());
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    delay.set(Duration::ZERO);
    sender.send_to(b"now", relay_address).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), target.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"now");
}
