use std::sync::Arc;
use std::time::Duration;

use coco_consensus::Message;
use coco_crypto::{Curve, EcKeyPair, RsaKeyPair, SubjectAltName, Validity};
use coco_node::PeerMessage;
use coco_node::identity::NodeIdentity;
use tokio::sync::mpsc;

use super::*;

fn validity() -> Validity {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Validity {
        not_before_unix_s: now - 60,
        not_after_unix_s: now + 3600,
    }
}

/// A service identity and `n` node channel identities endorsed by it.
fn service(n: usize) -> Vec<ChannelIdentity> {
    let service_key = Arc::new(EcKeyPair::generate(Curve::P384).unwrap());
    let service_cert =
        coco_crypto::self_signed_ca_cert(&service_key, "CCF Service", validity()).unwrap();
    (0..n)
        .map(|_| {
            let node = NodeIdentity::new(
                EcKeyPair::generate(Curve::P384).unwrap(),
                "CCF Node",
                &[SubjectAltName::Ip("127.0.0.1".parse().unwrap())],
                validity(),
                service_key.clone(),
                service_cert.clone(),
                RsaKeyPair::generate(2048).unwrap(),
            )
            .unwrap();
            ChannelIdentity {
                node_id: node.node_id.clone(),
                cert_pem: node.node_cert_pem.clone(),
                key_pkcs8_pem: node.node_key.to_pkcs8_pem(),
                service_cert_pem: service_cert.clone(),
            }
        })
        .collect()
}

/// A network for `id` whose received messages arrive on the returned receiver.
fn network(
    id: &ChannelIdentity,
    rt: &tokio::runtime::Runtime,
) -> (Network, mpsc::Receiver<(String, PeerMessage)>) {
    let (tx, rx) = mpsc::channel(16);
    (Network::new(id.clone(), rt.handle().clone(), tx), rx)
}

fn recv(
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<(String, PeerMessage)>,
) -> Result<Option<(String, PeerMessage)>, tokio::time::error::Elapsed> {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), rx.recv()).await })
}

#[test]
fn endorsed_nodes_talk_and_others_are_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ids = service(3);
    let (a, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let outsider = service(1).remove(0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let address = addr.to_string();
    let (mut net_b, mut rx) = network(&b, &rt);
    net_b.listen(listener).unwrap();
    let m = PeerMessage::Consensus(Message::RequestVote {
        term: 3,
        last_committable_idx: 10,
        term_of_last_committable_idx: 2,
        election_type: coco_consensus::ElectionType::Regular,
    });

    // a → b: delivered, attributed to a's node id, in order.
    let (mut net_a, mut rx_a) = network(&a, &rt);
    assert!(net_a.send(&b.node_id, Some(&address), &m));
    assert!(net_a.send(
        &b.node_id,
        Some(&address),
        &PeerMessage::Consensus(Message::ProposeRequestVote { term: 4 })
    ));
    assert_eq!(
        recv(&rt, &mut rx).unwrap(),
        Some((a.node_id.clone(), m.clone()))
    );
    assert_eq!(
        recv(&rt, &mut rx).unwrap(),
        Some((
            a.node_id.clone(),
            PeerMessage::Consensus(Message::ProposeRequestVote { term: 4 })
        ))
    );
    // b answers a without knowing a's address, over the connection a opened.
    assert!(net_b.send(
        &a.node_id,
        None,
        &PeerMessage::Consensus(Message::ProposeRequestVote { term: 6 })
    ));
    assert_eq!(
        recv(&rt, &mut rx_a).unwrap(),
        Some((
            b.node_id.clone(),
            PeerMessage::Consensus(Message::ProposeRequestVote { term: 6 })
        ))
    );
    // Without an address or a connection from the peer there is no route.
    assert!(!net_b.send(&c.node_id, None, &m));

    // a dials b's address believing it is c: the handshake fails, nothing is delivered.
    let (mut confused, _) = network(&a, &rt);
    confused.send(&c.node_id, Some(&address), &m);
    // A node of another service is refused by b.
    let (mut stranger, _) = network(&outsider, &rt);
    stranger.send(&b.node_id, Some(&address), &m);
    assert!(recv(&rt, &mut rx).is_err(), "nothing else arrives");

    // A malformed frame from an endorsed node closes that connection; the listener carries on.
    let cfg = client_config(&c, &b.node_id).unwrap();
    rt.block_on(async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .unwrap();
        write_frame(&mut s, &[9, 9, 9]).await.unwrap();
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    });
    assert!(
        recv(&rt, &mut rx).is_err(),
        "the malformed frame is not delivered"
    );
    let (mut net_c, _) = network(&c, &rt);
    net_c.send(
        &b.node_id,
        Some(&address),
        &PeerMessage::Consensus(Message::ProposeRequestVote { term: 5 }),
    );
    assert_eq!(
        recv(&rt, &mut rx).unwrap(),
        Some((
            c.node_id.clone(),
            PeerMessage::Consensus(Message::ProposeRequestVote { term: 5 })
        ))
    );
}
