//! The mover image, built with `docker build` (scripts/image.sh) and run
//! with `docker run` as a Job would run it: non-root, read-only root
//! filesystem, `/tmp` a tmpfs. One container backs up a host folder
//! mounted at `/data` to the Garage S3 cluster; a second restores it into
//! an empty folder, which must then be byte-identical.
//!
//! The test is named `docker_*` (and holds `s3`): scripts/test.sh leaves it
//! out, counted as skipped, where there is no Docker engine or no Garage
//! cluster; run without them it fails. `LIFEBOAT_MOVER_IMAGE` names an
//! image built already (CI builds it once with scripts/image.sh);
//! otherwise the test builds it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{PASSWORD, Run, assert_same_tree, write_tree};
use lifeboat_store::testing::garage::GarageCluster;

const MAX_IMAGE_BYTES: u64 = 30 * 1000 * 1000;

fn output(c: &mut Command) -> Run {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("running {c:?}: {e} (is Docker installed?)"));
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The image to test: `LIFEBOAT_MOVER_IMAGE`, or one built now.
fn image() -> String {
    if let Ok(tag) = std::env::var("LIFEBOAT_MOVER_IMAGE") {
        if !tag.is_empty() {
            return tag;
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/image.sh");
    let r = output(Command::new("bash").arg(script).arg("lifeboat-mover:test"));
    assert_eq!(
        r.code, 0,
        "scripts/image.sh failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r.stdout.trim().lines().last().unwrap().to_string()
}

fn inspect(image: &str, format: &str) -> String {
    let r = output(Command::new("docker").args(["image", "inspect", "-f", format, image]));
    assert_eq!(r.code, 0, "docker image inspect: {}", r.stderr);
    r.stdout.trim().to_string()
}

/// `docker run` of the image as a Job runs it, with the mover's settings
/// and the cluster's credentials, `dir` mounted at /data.
fn mover_container(image: &str, cluster: &GarageCluster, url: &str, dir: &Path) -> Command {
    let mut c = Command::new("docker");
    c.args([
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--network",
        "host",
    ])
    .args(["--security-opt", "no-new-privileges", "--cap-drop", "ALL"])
    .arg("-v")
    .arg(format!("{}:/data", dir.display()))
    .args(["-e", &format!("RESTIC_REPOSITORY={url}")])
    .args(["-e", &format!("RESTIC_PASSWORD={PASSWORD}")])
    .args([
        "-e",
        "MOVER_KDF_MEMORY_KIB=1024",
        "-e",
        "MOVER_KDF_ITERATIONS=1",
    ]);
    for (k, v) in cluster.env() {
        if k.starts_with("AWS_") {
            c.args(["-e", &format!("{k}={v}")]);
        }
    }
    c.arg(image);
    c
}

fn open_to_all(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.file_type().is_symlink() {
            continue;
        }
        let mode = md.permissions().mode() | 0o444 | if md.is_dir() { 0o111 } else { 0 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        if md.is_dir() {
            open_to_all(&p);
        }
    }
}

#[test]
fn docker_image_round_trip_through_s3() {
    let cluster = GarageCluster::shared().unwrap_or_else(|e| {
        panic!("no Garage cluster ({e}); scripts/test.sh starts one, or leaves `s3` tests out")
    });
    let image = image();

    // Small, non-root, with the CA bundle, and it starts read-only.
    let size: u64 = inspect(&image, "{{.Size}}").parse().unwrap();
    assert!(size < MAX_IMAGE_BYTES, "the image is {size} bytes");
    assert_eq!(inspect(&image, "{{.Config.User}}"), "65532:65532");
    let v = output(Command::new("docker").args([
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        &image,
        "--version",
    ]));
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(v.stdout.starts_with("lifeboat-mover "), "{}", v.stdout);
    let created = output(Command::new("docker").args(["create", &image]));
    assert_eq!(created.code, 0, "{}", created.stderr);
    let ctr = created.stdout.trim().to_string();
    let bundle = output(Command::new("docker").args([
        "cp",
        &format!("{ctr}:/etc/ssl/certs/ca-certificates.crt"),
        "-",
    ]));
    output(Command::new("docker").args(["rm", &ctr]));
    assert_eq!(
        bundle.code, 0,
        "no CA bundle in the image: {}",
        bundle.stderr
    );
    assert!(bundle.stdout.contains("BEGIN CERTIFICATE"));

    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    write_tree(&source, 42);
    // The mover runs as uid 65532: it must be able to read the volume.
    open_to_all(&source);
    let url = cluster.unique_url("mover-image");

    let r = output(mover_container(&image, &cluster, &url, &source).arg("backup"));
    assert_eq!(r.code, 0, "backup container:\n{}\n{}", r.stdout, r.stderr);
    let res = r.result();
    assert_eq!(res["repository_created"], true);
    assert!(res["snapshot"].is_string());
    assert!(!r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD));

    // A second container restores into an empty folder.
    let target = tmp.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    let r = output(mover_container(&image, &cluster, &url, &target).arg("restore"));
    assert_eq!(r.code, 0, "restore container:\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.result()["snapshot"], res["snapshot"]);
    assert_same_tree(&source, &target);
}
