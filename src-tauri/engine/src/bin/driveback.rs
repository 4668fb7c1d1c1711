fn main() {
    println!("driveback {}", driveback_engine::VERSION);
}
