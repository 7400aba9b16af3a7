//! Adjacent per-record stages run fused, in one pass over each batch: each
//! stage still keeps its own counts, a panic still names the stage it came
//! from, and the records lost with it are accounted for.

use dataflare::prelude::*;
use dataflare::testkit::probe;

#[tokio::test]
async fn each_stage_of_a_fused_pass_keeps_its_own_counts() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..100u64).batch_size(10))
        .filter(|x| x % 2 == 0) // 50 of 100
        .map(|x| x + 1)
        .flat_map(|x| vec![x; 3]) // 150
        .filter(|x| x % 3 == 0) // odd numbers 1..=99 divisible by 3: 17, three times each
        .inspect(|_| {})
        .filter_map(|x| (x > 50).then_some(x * 10)) // 51, 57, ..., 99: 9, three times each
        .to(sink)
        .run()
        .await
        .unwrap();

    let expected: Vec<u64> = (0..100u64)
        .filter(|x| x % 2 == 0)
        .map(|x| x + 1)
        .flat_map(|x| vec![x; 3])
        .filter(|x| x % 3 == 0)
        .filter_map(|x| (x > 50).then_some(x * 10))
        .collect();
    assert_eq!(probe.records(), expected);

    let counts = |name: &str| {
        let s = report.stage(name).unwrap();
        (s.records_in, s.records_out, s.filtered, s.expanded)
    };
    assert_eq!(counts("filter#1"), (100, 50, 50, 0));
    assert_eq!(counts("map#2"), (50, 50, 0, 0));
    assert_eq!(counts("flat_map#3"), (50, 150, 0, 100));
    assert_eq!(counts("filter#4"), (150, 51, 99, 0));
    assert_eq!(counts("inspect#5"), (51, 51, 0, 0));
    assert_eq!(counts("filter_map#6"), (51, 27, 24, 0));
    assert_eq!(expected.len(), 27);
    // A batch every record of which was dropped never reaches the next stage.
    let filter = report.stage("filter#4").unwrap();
    let inspect = report.stage("inspect#5").unwrap();
    assert_eq!(inspect.batches_in, filter.batches_out);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_panic_in_a_later_stage_of_a_fused_pass_names_that_stage() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..100u64).batch_size(10))
        .map(|x| x * 2)
        .filter(|x| x % 4 == 0)
        .map(|x| {
            assert!(x != 40, "no forties");
            x
        })
        .name("picky")
        .to(sink)
        .run_to_report()
        .await;

    let error = report.error().expect("the run failed");
    assert_eq!(error.stage(), Some("picky"));
    assert!(error.to_string().contains("no forties"), "{error}");
    assert!(!probe.is_closed());
    // The batch the panic struck counts as abandoned where it entered the pass.
    assert_eq!(report.stage("map#1").unwrap().abandoned, 10);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_panic_inside_a_flat_map_iterator_names_the_flat_map() {
    let report = Pipeline::from(source::iter(0..10u64))
        .map(|x| x + 1)
        .flat_map(|x| (0..x).map(|i| if i == 7 { panic!("seven") } else { i }))
        .to(sink::discard())
        .run_to_report()
        .await;

    let error = report.error().expect("the run failed");
    assert_eq!(error.stage(), Some("flat_map#2"));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_buffer_ends_a_fused_pass_and_the_next_stages_start_another() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..1_000u64).batch_size(100))
        .map(|x| x + 1)
        .filter(|x| x % 2 == 0)
        .buffer(2)
        .map(|x| x / 2)
        .filter(|x| x % 5 != 0)
        .to(sink)
        .run()
        .await
        .unwrap();

    let expected: Vec<u64> = (1..=1_000u64)
        .filter(|x| x % 2 == 0)
        .map(|x| x / 2)
        .filter(|x| x % 5 != 0)
        .collect();
    assert_eq!(probe.records(), expected);
    assert_eq!(report.stage("filter#2").unwrap().records_out, 500);
    assert_eq!(report.stage("map#4").unwrap().records_in, 500);
    assert_eq!(report.stage("filter#5").unwrap().filtered, 100);
    report.check_accounting().unwrap();
}
