"""Accounts pages, one module per area; urls.py imports each module.

registration · settings (the section shell, Profile, Preferences, Email routing, Password, Activity) ·
security · trusted_users · avatar_theme_social · privacy · login_2fa · staff_otp. Every settings card's
POST goes through `_posts.settings_form_post`.
"""
