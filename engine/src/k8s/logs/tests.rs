use super::*;
use crate::k8s::testing::*;
use loop_test_apiserver::ApiServer;

fn ts(s: &str) -> String {
    s.to_owned()
}

#[test]
fn timestamps_are_split_off() {
    let (t, text) = split_timestamp("2024-01-02T03:04:05.123456789Z hello world");
    assert_eq!(
        t.unwrap(),
        "2024-01-02T03:04:05.123456789Z".parse().unwrap()
    );
    assert_eq!(text, "hello world");
    assert_eq!(split_timestamp("no stamp here"), (None, "no stamp here"));
    let (t, text) = split_timestamp("2024-01-02T03:04:05Z");
    assert!(t.is_some());
    assert_eq!(text, "");
}

#[test]
fn a_reconnect_prints_only_new_lines() {
    let mut d = Dedupe::default();
    assert_eq!(d.resume_from(), None);
    let first = [
        ts("2024-01-02T03:04:05.1Z one"),
        ts("2024-01-02T03:04:05.2Z two"),
        ts("2024-01-02T03:04:05.2Z two"),
        ts("2024-01-02T03:04:05.2Z twin"),
    ];
    let printed: Vec<_> = first.iter().filter_map(|l| d.accept(l)).collect();
    assert_eq!(printed, ["one", "two", "two", "twin"]);
    assert_eq!(
        d.resume_from().unwrap(),
        "2024-01-02T03:04:05Z".parse().unwrap()
    );
    // The server sends the whole second again, then new lines, one of them a
    // third "two" at the same instant.
    d.reconnect();
    let second = [
        ts("2024-01-02T03:04:05.1Z one"),
        ts("2024-01-02T03:04:05.2Z two"),
        ts("2024-01-02T03:04:05.2Z two"),
        ts("2024-01-02T03:04:05.2Z twin"),
        ts("2024-01-02T03:04:05.2Z two"),
        ts("2024-01-02T03:04:06Z three"),
        ts("2024-01-02T03:04:06Z three"),
    ];
    let printed: Vec<_> = second.iter().filter_map(|l| d.accept(l)).collect();
    assert_eq!(printed, ["two", "three", "three"]);
    d.reconnect();
    let third = [
        ts("2024-01-02T03:04:06Z three"),
        ts("2024-01-02T03:04:06Z three"),
        ts("2024-01-02T03:04:07Z four"),
    ];
    let printed: Vec<_> = third.iter().filter_map(|l| d.accept(l)).collect();
    assert_eq!(printed, ["four"]);
    // Lines without a timestamp are never dropped.
    assert_eq!(d.accept("plain"), Some("plain"));
}

#[test]
fn backoff_doubles_up_to_a_cap() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
    let delays: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(delays, [100, 200, 350, 350]);
    b.reset();
    assert_eq!(b.next_delay().as_millis(), 100);
}

fn snapshot(lines: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    lines.lock().unwrap().clone()
}

async fn wait_for(lines: &std::sync::Mutex<Vec<String>>, what: &str) -> Vec<String> {
    eventually(what, || async {
        let now = snapshot(lines);
        now.iter().any(|l| l.ends_with(what)).then_some(now)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_reconnects_and_replaced_pods_without_repeating() {
    let server = ApiServer::start().await;
    let proxy = Proxy::start(&server).await;
    let applier = applier(&server, &proxy.url).await;
    let web = deployment("web", "web:v1");
    apply(&applier, &web).await;
    let first = running_pod(&applier, &web, &[]).await;

    let (sink, lines) = recorder();
    let follower = follow_logs(applier.clone(), web.clone(), Vec::new(), sink);
    for line in ["one", "two", "two", "three"] {
        server.append_log(&first, "app", line);
    }
    wait_for(&lines, "three").await;
    assert_eq!(snapshot(&lines), ["one", "two", "two", "three"]);

    // Break every connection, several times; lines appended meanwhile arrive,
    // and those sent again after each reconnect are not printed twice.
    proxy.cut();
    server.append_log(&first, "app", "four");
    wait_for(&lines, "four").await;
    proxy.cut();
    proxy.cut();
    server.append_log(&first, "app", "five");
    server.append_log(&first, "app", "five");
    wait_for(&lines, "five").await;
    proxy.cut();
    server.append_log(&first, "app", "six");
    wait_for(&lines, "six").await;
    assert_eq!(
        snapshot(&lines),
        ["one", "two", "two", "three", "four", "five", "five", "six"]
    );

    // The follower did reconnect, from the second of the last line seen.
    let resumed = server
        .requests()
        .iter()
        .filter(|r| r.contains(&format!("/pods/{first}/log?")) && r.contains("sinceTime="))
        .count();
    assert!(resumed >= 1, "{:?}", server.requests());

    // A changed template replaces the pod; the new pod's logs follow.
    apply(&applier, &deployment("web", "web:v2")).await;
    let second = running_pod(&applier, &web, &[&first]).await;
    server.append_log(&second, "app", "from the new pod");
    wait_for(&lines, "from the new pod").await;
    // Wait until the old pod is gone, then check nothing was repeated.
    eventually("the old pod to go", || async {
        let pods = workload_pods(&applier, &web, &[]).await.ok()?;
        pods.iter()
            .all(|p| p.metadata.name.as_deref() != Some(first.as_str()))
            .then_some(())
    })
    .await;
    server.append_log(&second, "app", "last");
    let all = wait_for(&lines, "last").await;
    let texts: Vec<&str> = all
        .iter()
        .map(|l| match l.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map_or(l.as_str(), |(_, t)| t),
            None => l.as_str(),
        })
        .collect();
    assert_eq!(
        texts,
        [
            "one",
            "two",
            "two",
            "three",
            "four",
            "five",
            "five",
            "six",
            "from the new pod",
            "last"
        ],
        "{all:?}"
    );
    follower.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_containers_are_prefixed() {
    let server = ApiServer::start().await;
    let applier = applier(&server, &server.url()).await;
    let pod = object(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: duo, labels: {app: duo}}\n\
         spec: {containers: [{name: a, image: 'a:1'}, {name: b, image: 'b:1'}]}\n",
    );
    apply(&applier, &pod).await;
    running_pod(&applier, &pod, &[]).await;
    let (sink, lines) = recorder();
    let _follower = follow_logs(applier.clone(), pod.clone(), Vec::new(), sink);
    server.append_log("duo", "a", "from a");
    server.append_log("duo", "b", "from b");
    wait_for(&lines, "from a").await;
    wait_for(&lines, "from b").await;
    let mut all = snapshot(&lines);
    all.sort();
    assert_eq!(all, ["[duo/a] from a", "[duo/b] from b"]);
}
