use super::*;
use mortar_storage::RocksStorage;

/// How the node opens checkpoints (see `crate::server`).
fn open_rocks(dir: &Path) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(Arc::new(RocksStorage::open(dir)?))
}

/// A checkpoint of `pairs` (key, value size) under `root` for epoch 1.
fn checkpoint(root: &Path, pairs: &[(String, usize)]) {
    let storage = RocksStorage::open(&checkpoint_dir(root, 1)).unwrap();
    for part in pairs.chunks(100) {
        let mut batch = WriteBatch::new();
        for (key, size) in part {
            batch.put_kv(Bytes::from(key.clone()), Bytes::from(vec![7u8; *size]));
        }
        storage.write(batch, true).unwrap();
    }
}

async fn collect(source: &Source, after: &[u8]) -> Vec<TransferChunk> {
    let mut rx = source.stream(1, Bytes::copy_from_slice(after)).unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = rx.recv().await {
        chunks.push(chunk.unwrap());
    }
    chunks
}

/// Large values (a page of them is far more than a gRPC message) are cut into chunks of at most
/// CHUNK_BYTES_MAX (a larger pair alone), in key order, every pair once; a copy resumes after
/// the last key stored.
#[tokio::test]
async fn chunks_stay_bounded_in_key_order_and_resume_after_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut pairs: Vec<(String, usize)> = (0..600).map(|i| (format!("k{i:04}"), 200 * 1024)).collect();
    pairs.push(("k9999".into(), 2 * 1024 * 1024));
    pairs.extend((0..50).map(|i| (format!("s{i:02}"), 10)));
    checkpoint(dir.path(), &pairs);
    let source = Source::new(dir.path().to_path_buf(), open_rocks);

    let chunks = collect(&source, b"").await;
    let mut keys = Vec::new();
    for chunk in &chunks {
        let bytes: usize = chunk.keys.iter().chain(&chunk.values).map(|b| b.len()).sum();
        assert!(
            bytes <= CHUNK_BYTES_MAX || chunk.keys.len() == 1,
            "{bytes} bytes in {} pairs",
            chunk.keys.len()
        );
        keys.extend(chunk.keys.iter().map(|k| String::from_utf8(k.to_vec()).unwrap()));
    }
    let mut expected: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
    expected.sort();
    assert_eq!(keys, expected);

    let rest = collect(&source, b"k0599").await;
    let rest: Vec<String> =
        rest.iter().flat_map(|c| c.keys.iter().map(|k| String::from_utf8(k.to_vec()).unwrap())).collect();
    assert_eq!(rest, expected[600..]);
    assert!(source.stream(2, Bytes::new()).is_err(), "no checkpoint of epoch 2");
}
