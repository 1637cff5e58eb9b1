//! Any bytes as a record of the durable store: decoding never panics, and a
//! record that decodes is one the store could have written (it encodes back
//! to a record that decodes to the same pod).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_service::store::records;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(pod) = records::decode_pod(bytes) {
        assert_eq!(records::decode_pod(&records::encode_pod(&pod)), Ok(pod));
    }
    if let Ok(lines) = records::decode_lines(bytes) {
        assert_eq!(
            records::decode_lines(&records::encode_lines(&lines)),
            Ok(lines)
        );
    }
});
