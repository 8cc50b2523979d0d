//! The storage contract against a real 3-node Garage cluster (S3).
//! `scripts/test.sh` leaves them out with `LIFEBOAT_SKIP_S3=1` (the runner
//! then counts them as skipped); run without a cluster, they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bytes::Bytes;
use lifeboat_store::testing::garage::GarageCluster;
use lifeboat_store::testing::{self as t, FaultConfig, FaultyBackend, Op};
use lifeboat_store::{Backend, Error, Location, OpenOptions};

/// The run's shared cluster. Without one the test fails: it never passes
/// without a server.
fn cluster() -> GarageCluster {
    GarageCluster::shared().unwrap_or_else(|e| panic!("no Garage cluster ({e}); the S3 tests need one: scripts/test.sh starts it, and with LIFEBOAT_SKIP_S3=1 it leaves these tests out, so the runner shows them as skipped"))
}

/// A cluster of the test's own (for tests that kill nodes or count
/// requests). Without one the test fails.
fn own_cluster() -> GarageCluster {
    GarageCluster::private().unwrap_or_else(|e| panic!("no Garage cluster ({e}); the S3 tests need one: scripts/test.sh starts it, and with LIFEBOAT_SKIP_S3=1 it leaves these tests out, so the runner shows them as skipped"))
}

fn open(c: &GarageCluster, url: &str, opts: OpenOptions) -> Arc<dyn Backend> {
    let mut opts = opts;
    opts.settings = c.settings();
    Location::parse(url)
        .unwrap()
        .open_with(true, &opts)
        .unwrap()
}

#[test]
fn s3_garage_keeps_the_storage_contract() {
    let c = cluster();
    let b = open(&c, &c.unique_url("conformance"), OpenOptions::default());
    assert!(b.location().starts_with("s3://lifeboat-test/conformance-"));
    assert!(b.location().contains(c.endpoint()), "{}", b.location());
    t::conformance(b.as_ref(), "").unwrap_or_else(|e| panic!("Garage: {e}"));
    // Garage 2.x ignores If-None-Match on PUT, so creates there are a HEAD
    // and a PUT; if a later Garage honours it, the suite above checked the
    // race too.
    eprintln!("Garage exclusive create: {}", b.exclusive_create().unwrap());
}

#[test]
fn s3_listing_is_paginated_not_per_object() {
    let c = own_cluster();
    let url = c.unique_url("listing");
    let counted = {
        let mut o = OpenOptions::default();
        o.faults = Some(FaultConfig::default());
        o
    };
    let b = open(&c, &url, counted);
    std::thread::scope(|s| {
        for t in 0..4 {
            let b = &b;
            s.spawn(move || {
                for i in (t..1200).step_by(4) {
                    b.put(&format!("c/{i:05}"), Bytes::from_static(b"x"))
                        .unwrap();
                }
            });
        }
    });
    let before = c.s3_requests(1).unwrap();
    let listed = b.list("c/").unwrap();
    let after = c.s3_requests(1).unwrap();
    assert_eq!(listed.len(), 1200);
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    // 1000 keys per page: 2 listing requests, and no request per object.
    assert_eq!(delta("ListObjectsV2"), 2, "{after:?}");
    let total: u64 = after.values().sum::<u64>() - before.values().sum::<u64>();
    assert_eq!(
        total, 2,
        "requests other than listing: {after:?} vs {before:?}"
    );
    for o in &listed {
        b.delete(&o.path).unwrap();
    }
}

#[test]
fn s3_large_objects_go_up_in_parts() {
    let c = own_cluster();
    let b = open(&c, &c.unique_url("multipart"), OpenOptions::default());
    let data = t::pattern(9, 70 << 20);
    let before = c.s3_requests(1).unwrap();
    b.put("b/aa/big", Bytes::from(data.clone())).unwrap();
    let after = c.s3_requests(1).unwrap();
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    // 70 MiB in 8 MiB parts.
    assert_eq!(delta("CreateMultipartUpload"), 1, "{after:?}");
    assert_eq!(delta("UploadPart"), 9, "{after:?}");
    assert_eq!(delta("CompleteMultipartUpload"), 1, "{after:?}");
    assert_eq!(delta("PutObject"), 0, "{after:?}");
    assert_eq!(b.head("b/aa/big").unwrap().size, 70 << 20);
    let r = b
        .get_range("b/aa/big", (33 << 20)..(33 << 20) + 4096)
        .unwrap();
    assert_eq!(r.as_ref(), &data[33 << 20..(33 << 20) + 4096]);
    assert_eq!(b.get("b/aa/big").unwrap().as_ref(), data.as_slice());
    b.delete("b/aa/big").unwrap();
}

#[test]
fn s3_reads_in_order_share_one_request() {
    let c = own_cluster();
    let b = open(&c, &c.unique_url("readahead"), OpenOptions::default());
    let data = t::pattern(3, 10 << 20);
    b.put("b/bb/pack", Bytes::from(data.clone())).unwrap();
    let before = c.s3_requests(1).unwrap();
    // 200 reads of 40 KiB in order, like a restore walking a pack.
    for i in 0..200u64 {
        let r = i * 50_000..i * 50_000 + 40_000;
        let got = b.get_range("b/bb/pack", r.clone()).unwrap();
        assert_eq!(got.as_ref(), &data[r.start as usize..r.end as usize]);
    }
    // Past the end, still exact.
    assert!(matches!(
        b.get_range("b/bb/pack", (10 << 20) - 10..(10 << 20) + 10),
        Err(Error::Truncated { len, .. }) if len == 10 << 20
    ));
    let after = c.s3_requests(1).unwrap();
    let gets = after.get("GetObject").copied().unwrap_or(0)
        - before.get("GetObject").copied().unwrap_or(0);
    // 10 MB in 4 MiB windows: 3 requests, and 1 more for the read past
    // the end.
    assert!(gets <= 5, "{gets} GETs for 200 reads in order");
    // Off, every read is a request.
    let mut o = OpenOptions::default();
    o.remote.read_ahead = 0;
    let plain = open(&c, &c.unique_url("noreadahead"), o);
    plain.put("b/bb/pack", Bytes::from(data.clone())).unwrap();
    let before = c.s3_requests(1).unwrap();
    for i in 0..20u64 {
        plain
            .get_range("b/bb/pack", i * 50_000..i * 50_000 + 40_000)
            .unwrap();
    }
    let after = c.s3_requests(1).unwrap();
    assert_eq!(
        after.get("GetObject").copied().unwrap_or(0)
            - before.get("GetObject").copied().unwrap_or(0),
        20
    );
}

#[test]
fn s3_wrong_credentials_fail_fast_without_retries_and_without_the_secret() {
    let c = cluster();
    let mut o = OpenOptions::default();
    o.faults = Some(FaultConfig::default());
    let secret = "wrong-secret-Zq8vR3nT5xL0pK7m";
    o.settings = vec![
        (
            "aws_access_key_id".into(),
            c.var("AWS_ACCESS_KEY_ID").into(),
        ),
        ("aws_secret_access_key".into(), secret.into()),
        ("aws_region".into(), c.var("AWS_REGION").into()),
        ("aws_endpoint".into(), c.endpoint().into()),
    ];
    let b = Location::parse(&c.unique_url("badauth"))
        .unwrap()
        .open_with(true, &o)
        .unwrap();
    let e = b.get("config").unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    assert!(!e.to_string().contains(secret), "{e}");
    assert!(!format!("{e:?}").contains(secret), "{e:?}");
    let e = b.put("config", Bytes::from_static(b"x")).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    assert!(!format!("{b:?}").contains(secret));
}

#[test]
fn s3_an_unreachable_endpoint_is_transient_and_retried() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = OpenOptions::default();
    o.retry.max_retries = 2;
    o.retry.first_delay = std::time::Duration::from_millis(10);
    o.settings = vec![
        ("aws_access_key_id".into(), "GKnothing".into()),
        ("aws_secret_access_key".into(), "nothing-secret".into()),
        ("aws_endpoint".into(), format!("http://127.0.0.1:{port}")),
    ];
    o.faults = Some(FaultConfig::default());
    let b = Location::parse("s3://nothing/here")
        .unwrap()
        .open_with(false, &o)
        .unwrap();
    let e = b.get("config").unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("gave up after 2 retries"), "{e}");
    assert!(!e.to_string().contains("nothing-secret"), "{e}");
}

#[test]
fn s3_transient_faults_over_s3_are_retried() {
    let c = cluster();
    let url = c.unique_url("faults");
    let plain = open(&c, &url, OpenOptions::default());
    let mut o = OpenOptions::default();
    o.retry.first_delay = std::time::Duration::from_millis(5);
    let faulty = Arc::new(FaultyBackend::new(
        plain,
        FaultConfig::parse("seed=11,transient=0.3,lost_replies=0.5,latency_ms=2,latency=0.2")
            .unwrap(),
    ));
    let b = lifeboat_store::RetryBackend::new(faulty.clone(), o.retry.clone());
    for i in 0..60 {
        let p = format!("d/{i:02}");
        b.put(&p, Bytes::from(vec![i as u8; 1000])).unwrap();
        assert_eq!(b.get(&p).unwrap().len(), 1000);
        b.create(&format!("a/{i:02}"), Bytes::from(vec![i as u8; 7]))
            .unwrap();
    }
    assert_eq!(b.list("a/").unwrap().len(), 60);
    // Every fault is retried, except one that strikes a create after an
    // earlier attempt landed: that attempt reports AlreadyExists, which the
    // retry layer resolves by reading the object back.
    let st = faulty.stats();
    assert!(st.transient_faults() > 20, "{}", st.to_json());
    assert!(b.retries() > 20 && b.retries() <= st.transient_faults());
    assert!(faulty.stats().of(Op::Put) >= 60);
}
