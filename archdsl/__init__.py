"""archdsl: CNN architectures written the way papers print them."""
__version__ = "0.1.0"
