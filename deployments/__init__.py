"""What runs the deployments (serve_flows), the Label Studio webhook receiver and the
continuation that turns a finished review into exactly one learn run."""
