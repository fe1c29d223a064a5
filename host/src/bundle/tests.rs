use super::*;

fn auto_reply() -> Bundle {
    let plugin = &igloo_plugin_artifacts::AUTO_REPLY;
    Bundle::new(plugin.manifest.to_owned(), plugin.component.to_vec()).unwrap()
}

#[test]
fn a_bundle_reads_back_as_written_signed_or_not() {
    let mut bundle = auto_reply();
    let read = Bundle::from_bytes(&bundle.to_bytes()).unwrap();
    assert_eq!(read.digest(), bundle.digest());
    assert!(read.signature().is_none());
    let key = SecretKey::generate();
    bundle.sign(&key);
    let read = Bundle::from_bytes(&bundle.to_bytes()).unwrap();
    assert_eq!(
        read.digest(),
        bundle.digest(),
        "signing changes nothing signed"
    );
    assert!(read.signature().unwrap().verifies(read.digest()));
    assert_eq!(*read.signature().unwrap().key(), key.public());
}

#[test]
fn changed_bytes_are_refused_and_a_signature_does_not_carry_over() {
    let mut bundle = auto_reply();
    bundle.sign(&SecretKey::generate());
    let bytes = bundle.to_bytes();
    // Flip a byte of the component (well inside the archive).
    let mut changed = bytes.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x01;
    assert!(matches!(
        Bundle::from_bytes(&changed),
        Err(BundleError::Tampered { .. })
    ));
    // The manifest and component swapped for others, the signature kept.
    let other = Bundle::new(
        bundle.manifest_text().replace("0.1.0", "9.9.9"),
        bundle.component().to_vec(),
    )
    .unwrap()
    .with_signature(bundle.signature().cloned());
    assert!(!other.signature().unwrap().verifies(other.digest()));
}

#[test]
fn hostile_archives_are_refused() {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(tar::EntryType::Regular);
    // Written raw: the builder itself refuses such a path.
    header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    header.set_cksum();
    archive.append(&header, &b"x"[..]).unwrap();
    let bytes = archive.into_inner().unwrap();
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(BundleError::Format(_))
    ));
    assert!(Bundle::from_bytes(b"not a tar").is_err());
}

#[test]
fn digests_are_only_sha256_hex() {
    assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
    for bad in [
        "sha256:../../etc/passwd",
        "md5:abc",
        &format!("sha256:{}", "A".repeat(64)),
        &format!("sha256:{}", "a".repeat(63)),
    ] {
        assert!(Digest::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_api_version_is_read_from_the_component() {
    let described = describe(igloo_plugin_artifacts::AUTO_REPLY.component).unwrap();
    assert_eq!(described.api_version, Some("0.2.0"));
    assert!(
        described
            .imports
            .iter()
            .any(|import| import.starts_with("igloo:plugin/messaging@")),
        "{described:?}"
    );
    // A core module is not a component.
    assert!(describe(b"\0asm\x01\0\0\0").is_err());
}

#[test]
fn keys_and_signatures_read_back_from_their_written_forms() {
    let key = SecretKey::generate();
    let again = SecretKey::from_file_text(&key.to_file_text()).unwrap();
    assert_eq!(again.public(), key.public());
    let public: PublisherKey = key.public().to_string().parse().unwrap();
    assert_eq!(public, key.public());
    let digest = auto_reply().digest().clone();
    let signature = Signature::parse(&key.sign(&digest).to_string()).unwrap();
    assert!(signature.verifies(&digest));
    assert!("ed25519:short".parse::<PublisherKey>().is_err());
}
