//! The builder: validation, and registration with a health registry.

use super::*;
use battlement_core::testing::RecordingSink;

#[test]
fn builder_validates_every_setting() {
    let cases = [
        (Bulkhead::builder(""), "name"),
        (Bulkhead::builder("b").max_concurrent(0), "max_concurrent"),
        (
            Bulkhead::builder("b").max_concurrent(usize::MAX),
            "max_concurrent",
        ),
        (
            Bulkhead::builder("b")
                .max_queued(1)
                .max_wait(Duration::ZERO),
            "max_wait",
        ),
        (
            Bulkhead::builder("b").max_wait(Duration::from_secs(1)),
            "max_wait",
        ),
    ];
    for (builder, setting) in cases {
        assert_eq!(
            builder.validate().unwrap_err().setting(),
            setting,
            "validate agrees with build"
        );
        let err = builder.build().unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
        assert!(err.component().starts_with("bulkhead"), "{err}");
    }
    assert!(Bulkhead::builder("b").validate().is_ok());
    let b = Bulkhead::builder("b").build().unwrap();
    assert_eq!(
        (b.max_concurrent(), b.max_queued(), b.max_wait()),
        (25, 0, None)
    );
}

#[test]
fn the_builder_registers_the_bulkhead() {
    let registry = RecordingSink::new();
    let b = Bulkhead::builder("db")
        .registry(&registry)
        .critical(true)
        .build()
        .unwrap();
    let _other = Bulkhead::builder("cache")
        .registry(&registry)
        .build()
        .unwrap();
    let registered = registry.registered();
    assert_eq!(registered.len(), 2);
    assert_eq!((registered[0].0.name(), registered[0].1), ("db", true));
    assert_eq!((registered[1].0.name(), registered[1].1), ("cache", false));
    // The registered component is the live bulkhead, not a copy.
    b.set_max_concurrent(7).unwrap();
    assert_eq!(
        registered[0].0.snapshot().metric("max_concurrent"),
        Some(7.0)
    );
}

#[test]
fn an_unbounded_queue_is_counted_in_32_bits() {
    let b = Bulkhead::builder("q")
        .max_concurrent(1)
        .max_queued(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(b.max_queued(), u32::MAX as usize);
}
