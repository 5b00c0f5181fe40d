//! `ext://` extensions fetched with git from their repository, as Tilt does:
//! a repository registered with `v1alpha1.extension_repo`, the default one
//! (`LOOP_EXTENSIONS_REPO` stands in for Tilt's on GitHub), Tilt's own cache,
//! and a fetch that fails. The repositories are local (`file://`).

use std::path::Path;
use std::process::Command;

use crate::support::{project, run_loop_with};

/// A git repository holding `hello/Tiltfile` (and `greeter/Tiltfile`), with
/// one commit.
fn extension_repo(dir: &Path, greeting: &str) {
    for (folder, function) in [("hello", "hi"), ("greeter", "greet")] {
        let ext = dir.join(folder);
        std::fs::create_dir_all(&ext).unwrap();
        std::fs::write(
            ext.join("Tiltfile"),
            format!("def {function}():\n    return '{greeting} from {folder}'\n"),
        )
        .unwrap();
    }
    for args in [
        &["init", "--quiet", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--quiet",
            "-m",
            "extensions",
        ],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }
}

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// A repository registered in the same Tiltfile is cloned into the cache on
/// first use, then used from there (even once the repository is gone).
#[test]
fn extension_repo_is_fetched_with_git_into_the_cache() {
    let repo = tempfile::tempdir().unwrap();
    extension_repo(repo.path(), "hello");
    let home = tempfile::tempdir().unwrap();
    let tiltfile = format!(
        "v1alpha1.extension_repo(name='mine', url='{}')\nv1alpha1.extension(name='greeting', repo_name='mine', repo_path='hello')\nload('ext://greeting', 'hi')\nprint(hi())\n",
        url(repo.path())
    );
    let dir = project(&[("Tiltfile", &tiltfile)]);
    let env = [("HOME", home.path()), ("XDG_CACHE_HOME", home.path())];
    let check = run_loop_with(dir.path(), &["check"], &env);
    assert_eq!(check.code, 0, "{}", check.transcript());
    assert!(
        check.stderr.contains("hello from hello"),
        "{}",
        check.transcript()
    );
    let cached = home
        .path()
        .join("loop/tilt_modules")
        .join(repo.path().strip_prefix("/").unwrap())
        .join("hello/Tiltfile");
    assert!(cached.is_file(), "{} is not in the cache", cached.display());
    drop(repo);
    let again = run_loop_with(dir.path(), &["check"], &env);
    assert_eq!(again.code, 0, "{}", again.transcript());
}

/// Without a registration, `ext://NAME` is the folder NAME of the default
/// repository; an existing Tilt cache of Tilt's repository is used as is.
#[test]
fn the_default_repo_and_tilts_cache_serve_unregistered_extensions() {
    let repo = tempfile::tempdir().unwrap();
    extension_repo(repo.path(), "fetched");
    let home = tempfile::tempdir().unwrap();
    let dir = project(&[(
        "Tiltfile",
        "load('ext://greeter', 'greet')\nprint(greet())\n",
    )]);
    let check = run_loop_with(
        dir.path(),
        &["check"],
        &[
            ("HOME", home.path()),
            ("XDG_CACHE_HOME", home.path()),
            ("LOOP_EXTENSIONS_REPO", Path::new(&url(repo.path()))),
        ],
    );
    assert_eq!(check.code, 0, "{}", check.transcript());
    assert!(
        check.stderr.contains("fetched from greeter"),
        "{}",
        check.transcript()
    );

    // Tilt's cache, for Tilt's own repository (nothing is fetched).
    let tilt_home = tempfile::tempdir().unwrap();
    let cached = tilt_home
        .path()
        .join(".local/share/tilt-dev/tilt_modules/github.com/tilt-dev/tilt-extensions/greeter");
    std::fs::create_dir_all(&cached).unwrap();
    std::fs::write(
        cached.join("Tiltfile"),
        "def greet():\n    return 'from tilt cache'\n",
    )
    .unwrap();
    let check = run_loop_with(
        dir.path(),
        &["check"],
        &[
            ("HOME", tilt_home.path()),
            ("XDG_CACHE_HOME", tilt_home.path()),
        ],
    );
    assert_eq!(check.code, 0, "{}", check.transcript());
    assert!(
        check.stderr.contains("from tilt cache"),
        "{}",
        check.transcript()
    );
}

/// A fetch that fails names the extension, the repository and what to run.
#[test]
fn a_failed_fetch_says_which_extension_and_how_to_fetch_it() {
    let home = tempfile::tempdir().unwrap();
    let gone = home.path().join("no-such-repo");
    let dir = project(&[(
        "Tiltfile",
        &format!(
            "v1alpha1.extension_repo(name='mine', url='{}')\nv1alpha1.extension(name='greeting', repo_name='mine', repo_path='hello')\nload('ext://greeting', 'hi')\n",
            url(&gone)
        ),
    )]);
    let check = run_loop_with(
        dir.path(),
        &["check"],
        &[("HOME", home.path()), ("XDG_CACHE_HOME", home.path())],
    );
    assert_eq!(check.code, 1, "{}", check.transcript());
    let err = check.stderr;
    assert!(err.contains("extension `greeting`: cannot fetch"), "{err}");
    assert!(err.contains(&url(&gone)), "{err}");
    assert!(err.contains("git clone"), "{err}");
    assert!(err.contains("Tiltfile:3:"), "{err}");

    // An extension of a repo no one registered.
    let dir = project(&[(
        "Tiltfile",
        "v1alpha1.extension(name='x', repo_name='nowhere')\nload('ext://x', 'y')\n",
    )]);
    let check = run_loop_with(dir.path(), &["check"], &[("HOME", home.path())]);
    assert_eq!(check.code, 1, "{}", check.transcript());
    assert!(
        check.stderr.contains("extension repo `nowhere`"),
        "{}",
        check.stderr
    );
}
