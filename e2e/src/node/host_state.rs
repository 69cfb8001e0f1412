//! What a cluster could leave behind on the host, captured so a test can compare before and
//! after: links, addresses, routes, iptables rules, mounts, network namespaces, cgroups,
//! the sysctls the nodes care about, and the fixed paths kubelet, containerd and CNI use.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::config::KUBELET_KERNEL_TUNABLES;

/// Fixed host paths a node would write if its mount namespace leaked.
const NODE_PATHS: &[&str] = &[
    "/run/containerd",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    "/etc/cni/net.d",
];

/// One snapshot; each entry is a line naming what it is ("route: ...", "mount: ...").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    entries: BTreeSet<String>,
}

impl HostState {
    pub fn capture() -> HostState {
        let mut entries = BTreeSet::new();
        let mut add = |kind: &str, lines: Vec<String>| {
            entries.extend(lines.into_iter().map(|line| format!("{kind}: {line}")));
        };
        add("link", output_lines("ip", &["-o", "link", "show"]).iter().map(|l| link_name(l)).collect());
        add("address", output_lines("ip", &["-o", "addr", "show"]).iter().map(|l| address(l)).collect());
        add("route", output_lines("ip", &["-4", "route", "show", "table", "all"]));
        add("iptables", iptables_rules(&output_lines("iptables-save", &[])));
        add("mount", mount_points(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()));
        add("netns", output_lines("ip", &["netns", "list"]));
        add("cgroup", kube_ocr_cgroups());
        let sysctls = KUBELET_KERNEL_TUNABLES
            .iter()
            .map(|(key, _)| *key)
            .chain(["net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"])
            .map(|key| {
                format!(
                    "{key}={}",
                    std::fs::read_to_string(Path::new("/proc/sys").join(key)).unwrap_or_default().trim()
                )
            })
            .collect();
        add("sysctl", sysctls);
        add("path", NODE_PATHS.iter().filter(|path| Path::new(path).exists()).map(|p| (*p).to_owned()).collect());
        HostState { entries }
    }

    /// What `after` has that `self` had not (`+`), and the reverse (`-`).
    pub fn diff(&self, after: &HostState) -> Vec<String> {
        let added = after.entries.difference(&self.entries).map(|entry| format!("+ {entry}"));
        let removed = self.entries.difference(&after.entries).map(|entry| format!("- {entry}"));
        added.chain(removed).collect()
    }
}

fn output_lines(program: &str, args: &[&str]) -> Vec<String> {
    Command::new(program)
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect())
        .unwrap_or_else(|e| vec![format!("{program} failed: {e}")])
}

/// `3: kocr0@if2: <...> ...` -> `kocr0`.
fn link_name(line: &str) -> String {
    let name = line.split(": ").nth(1).unwrap_or(line);
    name.split('@').next().unwrap_or(name).to_owned()
}

/// `2: eth0    inet 192.0.2.2/24 brd ... scope global eth0\       valid_lft ...` ->
/// `eth0 inet 192.0.2.2/24` (lifetimes change on their own).
fn address(line: &str) -> String {
    line.split_whitespace().skip(1).take(3).collect::<Vec<_>>().join(" ")
}

/// Rules and chains without packet counters or the comments with timestamps.
fn iptables_rules(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| !line.starts_with('#'))
        .map(|line| match line.find(" [") {
            Some(at) if line.starts_with(':') => line[..at].to_owned(),
            _ => line.clone(),
        })
        .collect()
}

/// The mount points of `/proc/self/mountinfo` (field 5).
fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).map(str::to_owned).collect()
}

/// Every cgroup directory named `kube-ocr*`, up to four levels below each hierarchy.
fn kube_ocr_cgroups() -> Vec<String> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if entry.file_name().to_string_lossy().starts_with("kube-ocr") {
                found.push(path.display().to_string());
            } else if depth > 0 {
                walk(&path, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_reduced_to_what_does_not_change_by_itself() {
        assert_eq!(link_name("5: kocr0@if3: <BROADCAST,MULTICAST,UP> mtu 1500"), "kocr0");
        assert_eq!(link_name("1: lo: <LOOPBACK,UP> mtu 65536"), "lo");
        assert_eq!(
            address("2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever"),
            "eth0 inet 192.0.2.2/24"
        );
        let rules = iptables_rules(&[
            "# Generated by iptables-save v1.8.9 on Mon Dec  7 04:20:00 2026".to_owned(),
            ":INPUT ACCEPT [10:2000]".to_owned(),
            "-A INPUT -j ACCEPT".to_owned(),
        ]);
        assert_eq!(rules, [":INPUT ACCEPT", "-A INPUT -j ACCEPT"]);
        let mountinfo =
            "22 1 0:21 / /sys rw shared:7 - sysfs sysfs rw\n30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro";
        assert_eq!(mount_points(mountinfo), ["/sys", "/sys/fs/cgroup"]);
    }

    #[test]
    fn a_diff_names_what_appeared_and_what_went() {
        let before = HostState { entries: ["link: eth0", "link: lo"].map(str::to_owned).into() };
        let after = HostState { entries: ["link: eth0", "link: kocr0"].map(str::to_owned).into() };
        assert_eq!(before.diff(&after), ["+ link: kocr0", "- link: lo"]);
        assert!(before.diff(&before).is_empty());
    }
}
