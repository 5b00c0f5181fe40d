//! The dashboard in a real browser: Debian's Chromium driven over WebDriver
//! (chromedriver), against a running `loop run` with real processes. `.ci/run`
//! installs `chromium` and `chromium-driver` when they are missing.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{free_port, lines, processes_with, project, Background};

const LOOPFILE: &str = r#"
local_resource('deploy', cmd='echo deployed >> deploy.runs', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False, labels=['release'])
local_resource('talker', serve_cmd='i=0; while true; do i=$((i+1)); printf "\033[32mtalker-line-%s\033[0m\n" $i; sleep 0.2; done')
local_resource('web', serve_cmd='exec sleep 3501', links=['http://localhost:3501'], resource_deps=['talker'])
"#;

/// chromedriver on a free port, stopped on drop.
struct Driver(Child, u16);

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,900", format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a Chromium session")
}

/// Evaluates `script` in the page until `done` accepts its value; fails with
/// the last value after `secs`.
async fn poll(
    client: &Client,
    secs: u64,
    what: &str,
    script: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = client.execute(script, vec![]).await.unwrap_or(Value::Null);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}; last value: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_dashboard_lists_triggers_follows_logs_and_disables_in_a_real_browser() {
    let dir = project(&[("Loopfile", LOOPFILE)]);
    let loop_run = Background::start(dir.path(), &["run", "--port", "0"]);
    loop_run.wait_for_output("2 resources up", 60);
    let output = loop_run.output();
    let url = output
        .lines()
        .find_map(|l| l.split("dashboard: ").nth(1))
        .expect("loop run prints the dashboard URL")
        .trim()
        .to_owned();
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = browser(&driver, profile.path()).await;
        client.goto(&url).await.unwrap();

        let names = poll(&client, 20, "the resource list", "return [...document.querySelectorAll('.row')].map(r => r.dataset.name)", |v| {
            v.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
        assert_eq!(names, json!(["deploy", "talker", "web"]));
        poll(&client, 20, "web to show ready", "return document.querySelector('.row[data-name=\"web\"] .dot').className", |v| {
            v.as_str().is_some_and(|c| c.contains("ready"))
        })
        .await;

        // A click on trigger runs the manual resource.
        client
            .find(Locator::Css(".row[data-name='deploy'] button[data-action='trigger']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let deploy_runs = dir.path().join("deploy.runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines(&deploy_runs) != 1 {
            assert!(Instant::now() < deadline, "the trigger click did not run deploy\n{}", loop_run.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // A line a process writes appears in its log pane, its colour rendered.
        client.find(Locator::Css(".row[data-name='talker'] .name")).await.unwrap().click().await.unwrap();
        poll(&client, 20, "talker's lines in the log pane", "return document.getElementById('log-lines').innerText", |v| {
            v.as_str().is_some_and(|t| t.contains("talker-line-"))
        })
        .await;
        let colour = client
            .execute("return [...document.querySelectorAll('#log-lines span')].find(s => s.textContent.startsWith('talker-line-')).style.color", vec![])
            .await
            .unwrap();
        assert_eq!(colour, json!("rgb(63, 185, 80)"), "ANSI green is rendered");

        // The graph view draws the ordering edge talker -> web dashed.
        client.find(Locator::Id("tab-graph")).await.unwrap().click().await.unwrap();
        let edges = poll(&client, 10, "the graph", "return [...document.querySelectorAll('#graph line')].map(l => l.getAttribute('class'))", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        assert_eq!(edges, json!(["ordering"]));
        let shot = client.screenshot().await.unwrap();
        std::fs::write(dir.path().join("dashboard-graph.png"), &shot).unwrap();
        client.find(Locator::Id("tab-resources")).await.unwrap().click().await.unwrap();
        let graph_shown = client
            .execute("return getComputedStyle(document.getElementById('graph')).display", vec![])
            .await
            .unwrap();
        assert_eq!(graph_shown, json!("none"), "the graph hides with its tab");

        // Disabling a serve resource stops its process.
        assert_eq!(processes_with("sleep 3501").len(), 1);
        client
            .find(Locator::Css(".row[data-name='web'] button[data-action='disable']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !processes_with("sleep 3501").is_empty() {
            assert!(Instant::now() < deadline, "disable did not stop web\n{}", loop_run.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        poll(&client, 20, "web to show disabled", "return document.querySelector('.row[data-name=\"web\"] .dot').className", |v| {
            v.as_str().is_some_and(|c| c.contains("disabled"))
        })
        .await;
        let shot = client.screenshot().await.unwrap();
        let path = dir.path().join("dashboard.png");
        std::fs::write(&path, &shot).unwrap();
        if let Some(keep) = std::env::var_os("LOOP_KEEP_SCREENSHOTS") {
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&path, Path::new(&keep).join("dashboard.png")).unwrap();
            std::fs::copy(dir.path().join("dashboard-graph.png"), Path::new(&keep).join("dashboard-graph.png")).unwrap();
        }
        assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
        client.close().await.unwrap();
    });
    drop(loop_run);
}

/// `v1alpha1.ui_button`s in a real browser: on their resource's row and in the
/// header; a click runs the command that starts on the button, after a form
/// for the button's inputs when it has some.
#[test]
fn ui_buttons_show_on_their_resource_and_in_the_header_and_a_click_runs_their_command() {
    let dir = project(&[(
        "Tiltfile",
        r#"
local_resource('web', serve_cmd='exec sleep 3403')
v1alpha1.ui_button(name='seed', text='Seed DB', location={'component_type': 'Resource', 'component_id': 'web'})
v1alpha1.cmd(name='seed-cmd', args=['sh', '-c', 'echo seeded >> seeded.txt'], start_on=v1alpha1.start_on_spec(ui_buttons=['seed']))
v1alpha1.ui_button(name='docs', text='Docs', location=v1alpha1.ui_component_location(component_id='nav', component_type='Global'))
v1alpha1.ui_button(name='greet', text='Greet', location={'component_type': 'Resource', 'component_id': 'web'}, inputs=[
    v1alpha1.ui_input_spec(name='WHO', label='Who', text=v1alpha1.ui_text_input_spec(default_value='world')),
    v1alpha1.ui_input_spec(name='LOUD', bool=v1alpha1.ui_bool_input_spec()),
])
v1alpha1.cmd(name='greet-cmd', args=['sh', '-c', 'echo "hello $WHO $LOUD" >> greeted.txt'], start_on=v1alpha1.start_on_spec(ui_buttons=['greet']))
"#,
    )]);
    let loop_run = Background::start(dir.path(), &["run", "--port", "0"]);
    loop_run.wait_for_output("1 resource up", 60);
    let url = loop_run
        .output()
        .lines()
        .find_map(|l| l.split("dashboard: ").nth(1).map(|u| u.trim().to_owned()))
        .expect("loop run prints the dashboard URL");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = browser(&driver, profile.path()).await;
        client.goto(&url).await.unwrap();
        poll(&client, 20, "the header button", "return document.getElementById('nav-buttons').innerText", |v| {
            v.as_str().is_some_and(|t| t.contains("Docs"))
        })
        .await;
        poll(&client, 20, "the resource's button", "return !!document.querySelector(\".row[data-name='web'] button[data-action='Seed DB']\")", |v| {
            v.as_bool() == Some(true)
        })
        .await;
        client
            .find(Locator::Css(".row[data-name='web'] button[data-action='Seed DB']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let seeded = dir.path().join("seeded.txt");
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines(&seeded) != 1 {
            assert!(Instant::now() < deadline, "the click did not run the command\n{}", loop_run.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A button with inputs asks for them in a form, then runs with them.
        client
            .find(Locator::Css(".row[data-name='web'] button[data-action='Greet']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let who = client
            .find(Locator::Css("#button-inputs input[data-input='WHO']"))
            .await
            .unwrap();
        assert_eq!(who.prop("value").await.unwrap().as_deref(), Some("world"));
        who.clear().await.unwrap();
        who.send_keys("browser").await.unwrap();
        client
            .find(Locator::Css("#button-inputs input[data-input='LOUD']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .find(Locator::Css("#button-inputs button[data-action='run']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let greeted = dir.path().join("greeted.txt");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&greeted).unwrap_or_default() != "hello browser true\n" {
            assert!(Instant::now() < deadline, "the form did not run the command with its values\n{}", loop_run.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.close().await.unwrap();
    });
}
