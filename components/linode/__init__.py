"""linode"""
