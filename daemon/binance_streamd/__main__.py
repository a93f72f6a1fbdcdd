from binance_streamd.cli import main

main()
