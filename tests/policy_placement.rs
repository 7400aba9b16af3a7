//! `on_error` sets the policy of the stage added last. On a stage that cannot
//! produce a record-level error the policy would silently never apply (the
//! usual slip: an `on_error` meant for a `try_map`, written after the next
//! stage), so the builder refuses it with a panic naming the stage, its kind
//! and where the policy should go; and a retry on the source, which cannot be
//! asked for the same record again.

use std::cell::RefCell;
use std::sync::Once;

use dataflare::ops::{BatchOp, Metered};
use dataflare::prelude::*;
use dataflare::testkit::Script;
use dataflare::{DeadLetters, Rejected};

type Input = Pipeline<Metered<source::Iter<std::vec::IntoIter<&'static str>>>>;

fn input() -> Input {
    Pipeline::from(source::iter(vec!["1", "x", "3"]))
}

/// A user `BatchOp` passing records on.
struct Identity;

impl BatchOp<&'static str> for Identity {
    type Out = &'static str;

    fn apply(&mut self, records: Vec<&'static str>) -> dataflare::Result<Vec<&'static str>> {
        Ok(records)
    }
}

/// `refused!(name, "message", |p| pipeline)`: `on_error(Skip)` right after
/// the last stage of `pipeline` (built from `p`, the input) panics with
/// `message`.
macro_rules! refused {
    ($name:ident, $message:literal, |$p:ident| $pipeline:expr) => {
        #[test]
        #[should_panic(expected = $message)]
        fn $name() {
            let $p = input();
            drop($pipeline.on_error(ErrorPolicy::Skip));
        }
    };
}

refused!(
    on_error_after_map_panics,
    r#"on_error landed on stage "map#1" (kind: map), which cannot produce a record-level error"#,
    |p| p.map(|s| s.len())
);
refused!(
    on_error_after_filter_panics,
    r#"on_error landed on stage "filter#1" (kind: filter), which cannot produce"#,
    |p| p.filter(|_| true)
);
refused!(
    on_error_after_filter_map_panics,
    r#"on_error landed on stage "filter_map#1" (kind: filter_map), which cannot produce"#,
    |p| p.filter_map(|s| s.parse::<u32>().ok())
);
refused!(
    on_error_after_flat_map_panics,
    r#"on_error landed on stage "flat_map#1" (kind: flat_map), which cannot produce"#,
    |p| p.flat_map(|s| s.chars().collect::<Vec<_>>())
);
refused!(
    on_error_after_inspect_panics,
    r#"on_error landed on stage "inspect#1" (kind: inspect), which cannot produce"#,
    |p| p.inspect(|_| {})
);
refused!(
    on_error_after_map_batch_panics,
    r#"on_error landed on stage "map_batch#1" (kind: map_batch), which cannot produce"#,
    |p| p.map_batch(|records| records)
);
refused!(
    on_error_after_transform_panics,
    r#"on_error landed on stage "transform#1" (kind: transform), which cannot produce"#,
    |p| p.transform(Identity)
);
refused!(
    on_error_after_take_panics,
    r#"on_error landed on stage "take#1" (kind: take), which cannot produce"#,
    |p| p.take(2)
);
refused!(
    on_error_after_rebatch_panics,
    r#"on_error landed on stage "rebatch#1" (kind: rebatch), which cannot produce"#,
    |p| p.rebatch(2)
);
refused!(
    on_error_after_buffer_panics,
    r#"on_error landed on stage "buffer#1" (kind: buffer), which cannot produce"#,
    |p| p.buffer(2)
);
refused!(
    on_error_after_map_async_panics,
    r#"on_error landed on stage "map_async#1" (kind: map_async), which cannot produce"#,
    |p| p.map_async(2, |s| async move { s.len() })
);
refused!(
    on_error_after_map_async_unordered_panics,
    r#"on_error landed on stage "map_async_unordered#1" (kind: map_async_unordered), which cannot produce"#,
    |p| p.map_async_unordered(2, |s| async move { s.len() })
);

#[test]
#[should_panic(
    expected = r#"on_error landed on stage "double" (kind: map), which cannot produce a record-level error, so the policy would never apply; put on_error right after the try_map / fallible stage it is meant for (try_map, try_filter, try_flat_map, try_map_async, par_try_map, route, or the source for its malformed records), or use default_policy"#
)]
fn the_panic_names_a_renamed_stage_its_kind_and_where_the_policy_goes() {
    drop(
        input()
            .try_map(|s: &&str| s.parse::<u32>())
            .map(|n| n * 2)
            .name("double")
            .on_error(ErrorPolicy::Skip),
    );
}

#[test]
#[should_panic(expected = "on_error landed on stage \"map#2\" (kind: map)")]
fn a_dead_letter_policy_one_stage_too_late_panics() {
    let rejects = Collected::<Rejected>::new();
    drop(
        input()
            .try_map(|s: &&str| s.parse::<u32>())
            .map(|n| n * 2)
            .on_error(DeadLetters::to(sink::collect(&rejects))),
    );
}

#[test]
#[should_panic(
    expected = "on_error(retry) landed on stage \"source\" (kind: source), which \
                           cannot retry a record"
)]
fn a_retry_on_the_source_panics() {
    drop(input().on_error(ErrorPolicy::retry(3).then(ErrorPolicy::Skip)));
}

thread_local! {
    static PANICKED_AT: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic, and returns the file and line the panic names.
fn panic_location(f: impl FnOnce()) -> Option<(String, u32)> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| (l.file().to_string(), l.line()));
            PANICKED_AT.set(at);
            previous(info);
        }));
    });
    PANICKED_AT.set(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    assert!(result.is_err(), "no panic");
    PANICKED_AT.take()
}

#[test]
fn the_panic_points_at_the_on_error_call() {
    let mut line = 0;
    let at = panic_location(|| {
        let p = input().map(|s| s.len());
        line = line!() + 1;
        drop(p.on_error(ErrorPolicy::Skip));
    });
    assert_eq!(at, Some((file!().to_string(), line)));
}

/// Every placement that can apply still works, and does what it says.
#[tokio::test]
async fn on_error_right_after_a_fallible_stage_or_on_the_source_applies() {
    let rejects = Collected::<Rejected>::new();
    let out = Collected::new();
    let source = Script::new()
        .batch(vec!["1", "x", "3"])
        .error(Error::parse("bad row"))
        .batch(vec!["4", "-5", "y", "6", "7"])
        .into_source();
    let report = Pipeline::from(source)
        .on_error(ErrorPolicy::Skip) // the source: its malformed row
        .try_map(|s: &&str| s.parse::<i32>())
        .on_error(DeadLetters::to(sink::collect(&rejects))) // "x", "y"
        .try_filter(|n: &i32| {
            if *n < 0 {
                Err(Error::msg("negative"))
            } else {
                Ok(*n != 7)
            }
        })
        .name("non-negative")
        .on_error(ErrorPolicy::Skip) // after a rename: still the try_filter
        .try_flat_map(|n: &i32| Ok::<_, Error>(vec![*n; 2]))
        .on_error(ErrorPolicy::retry(2).then(ErrorPolicy::Abort))
        .boxed()
        .try_map_async(2, |n: &i32| {
            let n = *n;
            async move { Ok::<_, Error>(n * 10) }
        })
        .on_error(ErrorPolicy::retry(3))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![10, 10, 30, 30, 40, 40, 60, 60]);
    assert_eq!(report.stage("source").unwrap().skipped, 1);
    assert_eq!(report.stage("try_map#1").unwrap().dead_lettered, 2);
    assert_eq!(report.stage("non-negative").unwrap().skipped, 1);
    assert_eq!(rejects.len(), 2);
    report.check_accounting().unwrap();
}

/// A retry the source cannot do is still possible pipeline-wide: under
/// `default_policy`, the source's failed record goes straight to the
/// retry's final policy while fallible stages retry.
#[tokio::test(start_paused = true)]
async fn a_default_retry_applies_its_final_policy_to_the_source() {
    let source = Script::new()
        .batch(vec!["1"])
        .error(Error::parse("bad row"))
        .batch(vec!["2"])
        .into_source();
    let report = Pipeline::from(source)
        .default_policy(ErrorPolicy::retry(3).then(ErrorPolicy::Skip))
        .try_map(|s: &&str| s.parse::<u32>())
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let source = report.stage("source").unwrap();
    assert_eq!((source.skipped, source.retried), (1, 0));
    assert_eq!(report.records_out(), 2);
}
