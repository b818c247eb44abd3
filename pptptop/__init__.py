"""pptptop: a live terminal UI and headless analyser for PPTP VPN tunnels."""

__version__ = "0.1.0"
