//! A one-file change to an image on a 100 MB base, built and pushed two ways,
//! side by side in one run: `oci_build` (no daemon: one new layer, config and
//! manifest sent by `loop`), `docker_build` (`docker build` with the context
//! `loop` sends, then `docker push`), and the same `docker_build` without the
//! `ARG` line that sends it to Docker (built by `loop`: no `RUN` step). Both push to the same local registry
//! (Debian's `docker-registry` on loopback); the base is in it beforehand. The
//! bytes pushed are the growth of the registry's storage. Prints medians.
//!
//! Needs a Docker daemon (`DOCKER_HOST`, e.g. from `.ci/dockerd.sh`):
//! `bash -c 'source .ci/dockerd.sh; cargo bench --bench images'`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use loop_engine::image::{build_to, Destination, Record};
use loop_lang::model::{DefaultRegistry, Image, ImageKind, OciCopy};
use loop_lang::Location;

mod bench_support;
use bench_support::median;

const RUNS: usize = 5;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let meta = e.metadata().unwrap();
            total += if meta.is_dir() {
                du(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A 100 MB base (busybox and 100 MB of incompressible bytes) pushed to the
/// registry at `host`; returns its reference there.
fn base_image(work: &Path, host: &str) -> String {
    let root = work.join("base");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static is installed");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    // Incompressible: xorshift bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = vec![0u8; 100 << 20];
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(root.join("data/blob"), bytes).unwrap();
    let tar = work.join("base.tar");
    let ok = Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            "bin",
            "data",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let reference = format!("{host}/base/big:1");
    docker(&["import", tar.to_str().unwrap(), &reference]);
    docker(&["push", &reference]);
    reference
}

fn main() {
    if std::env::var_os("DOCKER_HOST").is_none() {
        eprintln!("bench images needs a Docker daemon: run it as `bash -c 'source .ci/dockerd.sh; cargo bench --bench images'`");
        std::process::exit(1);
    }
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let storage = work.path().join("registry");
    let config = work.path().join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            storage.display()
        ),
    )
    .unwrap();
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry runs");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let base = base_image(work.path(), &host);

    let project = work.path().join("project");
    std::fs::create_dir_all(project.join("app")).unwrap();
    std::fs::write(project.join("app/main.txt"), "0\n").unwrap();
    std::fs::write(project.join("app/lib.txt"), "a library\n").unwrap();
    // `ARG` sends this one to Docker; the same without it is built by `loop`.
    std::fs::write(
        project.join("Dockerfile.docker"),
        format!("FROM {base}\nARG UNUSED=1\nCOPY app /app\n"),
    )
    .unwrap();
    std::fs::write(
        project.join("Dockerfile"),
        format!("FROM {base}\nCOPY app /app\n"),
    )
    .unwrap();
    std::fs::write(project.join(".dockerignore"), "Dockerfile*\n").unwrap();

    let mut oci = Image::new("bench/oci", ImageKind::Oci, Location::default());
    oci.base = Some(base.clone());
    oci.copies = vec![OciCopy {
        src: "app".into(),
        dest: "/app".into(),
    }];
    oci.deps = vec!["app".into()];
    oci.command_dir = ".".into();
    let mut dockerb = Image::new("bench/docker", ImageKind::Docker, Location::default());
    dockerb.context = Some(".".into());
    dockerb.dockerfile = Some("Dockerfile.docker".into());
    dockerb.deps = vec![".".into()];
    let mut auto = dockerb.clone();
    auto.image_ref = "bench/auto".into();
    auto.dockerfile = Some("Dockerfile".into());
    let destination = Destination::Registry(DefaultRegistry {
        host: host.clone(),
        host_from_cluster: None,
        single_name: None,
    });
    let record = Record::empty(&project);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log: loop_engine::report::LineSink = {
        let lines = lines.clone();
        Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_owned()))
    };
    let build = |image: &Image| -> (f64, u64) {
        let before = du(&storage);
        let start = Instant::now();
        runtime
            .block_on(build_to(
                image,
                &project,
                log.clone(),
                &record,
                &destination,
            ))
            .unwrap_or_else(|e| panic!("{e}\n{}", lines.lock().unwrap().join("\n")));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        (ms, du(&storage) - before)
    };
    // First builds: the caches and the registry get the base.
    let (oci_first, oci_first_bytes) = build(&oci);
    let (docker_first, docker_first_bytes) = build(&dockerb);
    let _ = build(&auto);
    let mut samples: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    for i in 1..=RUNS {
        std::fs::write(project.join("app/main.txt"), format!("{i}\n")).unwrap();
        for (n, image) in [&oci, &dockerb, &auto].into_iter().enumerate() {
            let (ms, bytes) = build(image);
            samples[n].0.push(ms);
            samples[n].1.push(bytes as f64);
        }
    }
    println!("one-file change on a 100 MB base, build + push to a registry on loopback, median of {RUNS}:");
    println!("{:<34} {:>10} {:>16}", "", "time", "bytes pushed");
    for (n, name) in [
        "oci_build (no daemon)",
        "docker_build + docker push",
        "docker_build, no RUN (no daemon)",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "{name:<34} {:>7.0} ms {:>16.0}",
            median(samples[n].0.clone()),
            median(samples[n].1.clone())
        );
    }
    println!(
        "first build (base not yet in the target repo): oci_build {oci_first:.0} ms, {oci_first_bytes} B; docker {docker_first:.0} ms, {docker_first_bytes} B"
    );
    let _ = registry.kill();
    let _ = registry.wait();
    let _: PathBuf = project;
}
