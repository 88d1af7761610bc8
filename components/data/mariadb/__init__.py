"""mariadb"""
