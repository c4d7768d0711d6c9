fn main() {
    let code = sluice::cli::main(std::env::args_os());
    std::process::exit(code);
}
