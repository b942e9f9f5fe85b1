//! `weft run` as a user runs it: the real binary, real scripts, exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A script file, deleted on drop.
struct Script(PathBuf);

impl Script {
    fn new(body: &str) -> Script {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "weft-run-{}-{}.lua",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let p = std::env::temp_dir().join(name);
        std::fs::write(&p, body).unwrap();
        Script(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn args_reach_the_script_as_in_luajit() {
    let s = Script::new(
        "#!/usr/bin/env weft\nprint(arg[0] == ..., select('#', ...), arg[1], arg[2], ...)\n",
    );
    let out = weft(&["run", s.path(), "a b", "-x"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "false\t2\ta b\t-x\ta b\t-x\n");
}

#[test]
fn weft_is_preloaded_and_threads_work() {
    let s = Script::new("local weft = require 'weft' local t = weft.spawn(function(x) return x * 2 end, 21) print(t:join())");
    let out = weft(&["run", s.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "42\n");
}

#[test]
fn a_script_error_exits_1_with_the_message_and_line() {
    let s = Script::new("local x = 1\nerror('broken here')\n");
    let out = weft(&["run", s.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(":2: broken here"), "{err}");
}

#[test]
fn os_exit_sets_the_status() {
    let s = Script::new("os.exit(3)");
    assert_eq!(weft(&["run", s.path()]).status.code(), Some(3));
}

#[test]
fn a_missing_script_is_one_clear_line() {
    let out = weft(&["run", "/nonexistent/dir/x.lua"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("weft: cannot open /nonexistent/dir/x.lua:"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(weft(&["run"]).status.code(), Some(2));
    assert_eq!(weft(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn ending_with_threads_still_running_exits_promptly_with_the_scripts_status() {
    let s = Script::new(
        "local weft = require 'weft'\n\
         local ch = weft.channel()\n\
         for i = 1, 4 do weft.spawn(function() return ch:pop() end) end\n\
         weft.spawn(function() local t = os.clock() while os.clock() - t < 60 do weft.check() end end)\n\
         local p = weft.pool{size = 2}\n\
         p:submit(function() local t = os.clock() while os.clock() - t < 60 do weft.check() end end)\n\
         print('bye')\n",
    );
    let started = Instant::now();
    let out = weft(&["run", s.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "bye\n");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "exit hung for {:?}",
        started.elapsed()
    );
}

#[test]
fn script_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"print(1 + 1)")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "2\n");
}

#[test]
fn require_finds_weft_again_after_package_loaded_is_cleared() {
    // A common idiom for reloading a module: clear package.loaded and require it anew.
    // Under `weft run` there is no weft.so on package.cpath, so weft must stay findable
    // through package.preload, in the main script as in workers.
    let s = Script::new(
        "package.loaded.weft = nil\n\
         local weft = require 'weft'\n\
         print(type(weft.spawn), weft.spawn(function(x) return x + 1 end, 41):join())\n\
         print(rawequal(weft, require 'weft'))\n",
    );
    let out = weft(&["run", s.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "function\t42\ntrue\n");
}

/// LuaJIT's CPU features, detected once per process by this binary (src/cpu_detect.rs), are
/// the machine's, in the main state and in threads' fresh states alike.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn every_state_sees_the_machines_cpu_features() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap();
    let want: Vec<&str> = [("pni", "SSE3"), ("sse4_1", "SSE4.1"), ("bmi2", "BMI2")]
        .into_iter()
        .filter(|(flag, _)| flags.contains(flag))
        .map(|(_, name)| name)
        .collect();
    let s = Script::new(
        "local weft = require 'weft'
         local function cpu()
           local t = { select(2, jit.status()) }
           local names = {}
           for _, v in ipairs(t) do if v:match('^[A-Z]') then names[#names + 1] = v end end
           return table.concat(names, ' ')
         end
         print(cpu())
         for _ = 1, 3 do print(weft.spawn(cpu):join()) end",
    );
    let out = weft(&["run", s.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = want.join(" ");
    assert_eq!(text(&out.stdout), format!("{line}\n").repeat(4));
}
