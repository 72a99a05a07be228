//! The client speaks https by default (the `rustls` feature): a request to
//! an `https://` server opens with a TLS ClientHello.

// Tests may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::io::AsyncReadExt as _;

#[tokio::test]
async fn an_https_server_gets_a_tls_client_hello() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("a connection");
        let mut head = [0_u8; 3];
        socket.read_exact(&mut head).await.expect("the first bytes");
        head
    });
    let client = pictor_client::Client::new(&format!("https://localhost:{}", address.port()))
        .expect("an https server is accepted by default");
    // The server hangs up after the first bytes, so the request itself fails.
    assert!(client.get_images(&pictor_client::ImageQuery::default()).await.is_err());
    let head = server.await.expect("the server task");
    // A TLS record of type handshake (22), protocol 3.x.
    assert_eq!((head[0], head[1]), (0x16, 0x03), "not a TLS ClientHello: {head:?}");
}
