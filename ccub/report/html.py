def render_html(report, facts):
    return "<html></html>"
