from grux.train.main import run

run()
