"""Local-only serving: ``mlsys serve`` (gunicorn), its HTTP adapter and the
``background`` log writer. Not in the Lambda bundle (``make lambda-package``
leaves this package out): nothing on the Lambda path may import it."""
