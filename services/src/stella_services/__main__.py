from stella_services.cli.main import app

app()
