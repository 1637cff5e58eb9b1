//! Any text as `sync-pods` input: the command parser never panics. (It does
//! not validate names: the server does that, once, at its edge; so the
//! check here is only what the parser itself promises.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_service::client::sync::{Command, parse};
use pod_service::contract::sync_request::Op;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        if let Ok(Some(Command::Apply(edit))) = parse(line) {
            assert!(!edit.namespace.contains(char::is_whitespace), "{line:?}");
            assert!(!edit.name.contains(char::is_whitespace), "{line:?}");
            assert!(!edit.namespace.contains('/'), "{line:?}");
        }
        if let Ok(Some(Command::Op(op))) = parse(line) {
            let (namespace, name) = match &op {
                Op::Apply(pod) => (&pod.namespace, &pod.name), // (the parser makes none)
                Op::Delete(pod) => (&pod.namespace, &pod.name),
                Op::Subscribe(subscribe) => (&subscribe.namespace, &subscribe.namespace),
            };
            // Words are split on whitespace, and NS/NAME on the first '/'.
            assert!(!namespace.contains(char::is_whitespace), "{line:?}");
            assert!(!name.contains(char::is_whitespace), "{line:?}");
            assert!(
                !matches!(op, Op::Subscribe(_)) || !namespace.contains('='),
                "{line:?}"
            );
            assert!(
                matches!(op, Op::Subscribe(_)) || !namespace.contains('/'),
                "{line:?}"
            );
        }
    }
});
