//! `weft run`: an embedded LuaJIT that behaves like `luajit SCRIPT ARGS...`.

use mlua::{Lua, Table};
use std::process::ExitCode;

fn load_source(script: &str) -> Result<Vec<u8>, String> {
    let bytes = if script == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("weft: cannot read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(script).map_err(|e| format!("weft: cannot open {script}: {e}"))?
    };
    // Like luaL_loadfile: a first line starting with '#' (a shebang) is skipped, but its
    // newline is kept so line numbers in errors stay right.
    Ok(if bytes.first() == Some(&b'#') {
        let end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        bytes[end..].to_vec()
    } else {
        bytes
    })
}

fn setup(lua: &Lua, script: &str, args: &[String]) -> mlua::Result<()> {
    let weft = weft_lua::open(lua)?;
    let package: Table = lua.globals().get("package")?;
    package.get::<Table>("loaded")?.set("weft", weft)?;
    // No weft.so is on package.cpath here: a script that clears package.loaded.weft (to
    // reload modules) must still find weft, as worker states do, through package.preload.
    // `open` returns the one module table of this state.
    package
        .get::<Table>("preload")?
        .set("weft", lua.create_function(|lua, ()| weft_lua::open(lua))?)?;
    let arg = lua.create_table()?;
    let exe = std::env::args().next().unwrap_or_else(|| "weft".into());
    arg.raw_set(-2, exe)?;
    arg.raw_set(-1, "run")?;
    arg.raw_set(0, script)?;
    for (i, a) in args.iter().enumerate() {
        arg.raw_set(i + 1, a.as_str())?;
    }
    lua.globals().set("arg", arg)
}

/// Run `script` with `args`; the exit code is 0 unless the script raised an error.
pub fn run(script: &str, args: &[String]) -> ExitCode {
    let source = match load_source(script) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: a script run by `weft run` gets the full standard library (debug, ffi, jit),
    // exactly as under the `luajit` command.
    let lua = unsafe { Lua::unsafe_new() };
    if let Err(e) = setup(&lua, script, args) {
        eprintln!("weft: cannot start: {e}");
        return ExitCode::FAILURE;
    }
    let name = if script == "-" {
        "=stdin".to_string()
    } else {
        format!("@{script}")
    };
    let chunk = lua.load(source).set_name(name);
    let result = chunk.call::<mlua::MultiValue>(
        args.iter()
            .map(|a| a.as_str())
            .collect::<mlua::Variadic<_>>(),
    );
    match result {
        Ok(_) => {
            // Every rank ends MPI after its script (MPI_Finalize waits for the others).
            #[cfg(feature = "mpi")]
            weft_mpi::finalize();
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Under MPI, the other ranks may be waiting for this one: end the whole job
            // with this rank's message (MPI_Abort) instead of leaving them blocked.
            #[cfg(feature = "mpi")]
            if weft_mpi::get().is_some() {
                weft_mpi::abort(1, &e.to_string());
            }
            eprintln!("weft: {e}");
            ExitCode::FAILURE
        }
    }
}
