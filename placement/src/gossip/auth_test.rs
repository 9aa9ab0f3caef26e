use super::*;

fn key(secret: &str) -> GossipKey {
    GossipKey::from_secret(secret.as_bytes()).expect("long enough")
}

#[test]
fn sealed_datagrams_open_with_the_same_key_only() {
    let payload = b"a foca packet".as_slice();
    let mut sealed = Vec::new();
    seal(&key("correct horse battery staple"), payload, &mut sealed);
    assert_eq!(sealed.len(), payload.len() + SEAL_BYTES);
    assert!(is_sealed(&sealed));
    assert_eq!(open(&key("correct horse battery staple"), &sealed), Ok(payload));
    assert_eq!(open(&key("correct horse battery stapler"), &sealed), Err(Unauthenticated));
}

#[test]
fn every_bit_flip_and_every_truncation_is_refused() {
    let key = key("correct horse battery staple");
    let mut sealed = Vec::new();
    seal(&key, b"a foca packet", &mut sealed);
    for bit in 0..sealed.len() * 8 {
        let mut flipped = sealed.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(open(&key, &flipped), Err(Unauthenticated), "bit {bit}");
    }
    for len in 0..sealed.len() {
        assert_eq!(open(&key, &sealed[..len]), Err(Unauthenticated), "truncated to {len}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(open(&key, &longer), Err(Unauthenticated));
}

#[test]
fn an_unsealed_datagram_is_refused_and_not_mistaken_for_a_sealed_one() {
    let key = key("correct horse battery staple");
    // An unsealed foca datagram starts with the sender's node id and socket address.
    let unsealed = [7, 0, 127, 0, 0, 1, 0x9e, 0x3c, 1, 2, 3];
    assert!(!is_sealed(&unsealed));
    assert_eq!(open(&key, &unsealed), Err(Unauthenticated));
    // Even one long enough and with a tag-sized tail.
    let padded: Vec<u8> = unsealed.iter().copied().chain([0; TAG_BYTES]).collect();
    assert_eq!(open(&key, &padded), Err(Unauthenticated));
}

#[test]
fn short_secrets_are_refused_and_keys_never_print() {
    let error = GossipKey::from_secret(b"too short").expect_err("9 bytes");
    assert_eq!(error, KeyError::SecretTooShort { bytes: 9, min: GossipKey::SECRET_BYTES_MIN });
    assert!(error.to_string().contains("at least 16"), "{error}");
    assert!(GossipKey::from_secret(&[0; GossipKey::SECRET_BYTES_MIN]).is_ok());

    let key = key("correct horse battery staple");
    let printed = format!("{key:?} {:?}", Some(key.clone()));
    assert_eq!(printed, "GossipKey(<redacted>) Some(GossipKey(<redacted>))");
    // The key is derived, not the secret itself: the secret's bytes are nowhere in it.
    assert_ne!(&key.0[..16], b"correct horse ba");
}
