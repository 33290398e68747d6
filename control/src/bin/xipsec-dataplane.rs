//! `xipsec-dataplane`: the AF_XDP data plane process (see the `xipsec_dataplaned` crate).

fn main() -> std::process::ExitCode {
    xipsec_dataplaned::main()
}
